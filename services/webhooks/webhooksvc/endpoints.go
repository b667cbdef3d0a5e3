package webhooksvc

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/wxlogin/wxlogin/shared/api/identity"
)

// Endpoint is one receiver of WXLOGIN_WEBHOOKS_FILE, validated. Its URL
// (whose query may hold a token) and its secrets are never logged: log
// the Endpoint itself, whose LogValue shows the name and host only.
type Endpoint struct {
	// Name identifies it: its durable consumer is webhooks_<Name>, its dead
	// letters wxlogin.webhooks.dead.<Name>, its metrics endpoint="<Name>".
	Name string
	URL  *url.URL
	// Events are the event types it receives ("user.created", "user.*");
	// empty: all.
	Events []string
	// Concurrency is how many requests to it each copy of the service has
	// in flight at most.
	Concurrency int
	// Timeout bounds one request.
	Timeout time.Duration

	keys [][]byte // the decoded secrets; each signs every delivery
}

// Defaults and bounds of an endpoint's settings.
const (
	defaultConcurrency = 4
	maxConcurrency     = 64
	defaultTimeout     = 10 * time.Second
	minTimeout         = time.Second
	maxTimeout         = time.Minute
	// Standard Webhooks' bounds on a secret: 24 to 64 bytes.
	minSecretBytes = 24
	maxSecretBytes = 64
	// maxFileBytes bounds WXLOGIN_WEBHOOKS_FILE: a list of endpoints, not a document.
	maxFileBytes = 1 << 20
	secretPrefix = "whsec_"
)

// entry is one endpoint as the file spells it.
type entry struct {
	Name        string   `yaml:"name"`
	URL         string   `yaml:"url"`
	Secret      string   `yaml:"secret"`
	Events      []string `yaml:"events"`
	Concurrency int      `yaml:"concurrency"`
	Timeout     string   `yaml:"timeout"`
}

var (
	nameRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	// An event type: dot-separated tokens of lower-case letters, digits and
	// _, where a token may be * (any one) and the last may be > (the rest).
	typeRe = regexp.MustCompile(`^(?:[a-z0-9_]+|\*)(?:\.(?:[a-z0-9_]+|\*))*(?:\.>)?$|^>$`)
	// whsecRe finds what looks like a secret in a parser's message.
	whsecRe = regexp.MustCompile(secretPrefix + `[A-Za-z0-9+/=_-]*`)
)

// LoadEndpoints reads and validates the endpoints file (YAML, or JSON,
// which YAML includes). The error is one line naming WXLOGIN_WEBHOOKS_FILE
// and the entry at fault, never a secret or a URL.
func LoadEndpoints(path string) ([]*Endpoint, error) {
	eps, err := loadEndpoints(path)
	if err != nil {
		return nil, fmt.Errorf("WXLOGIN_WEBHOOKS_FILE: %w", err)
	}
	return eps, nil
}

func loadEndpoints(path string) ([]*Endpoint, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err // names the path
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(raw) > maxFileBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxFileBytes)
	}
	var entries []entry
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true) // a misspelt key (evnets:) is an error, not an endpoint for every event
	if err := dec.Decode(&entries); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: not a YAML or JSON list of endpoints: %s", path, parseError(err))
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("%s lists no endpoint", path)
	}
	eps := make([]*Endpoint, 0, len(entries))
	seen := map[string]int{}
	for i, e := range entries {
		where := fmt.Sprintf("endpoint %d", i+1)
		if e.Name != "" {
			where += fmt.Sprintf(" (%q)", e.Name)
		}
		ep, err := e.endpoint()
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", path, where, err)
		}
		if j, dup := seen[ep.Name]; dup {
			return nil, fmt.Errorf("%s: %s: name %q is also endpoint %d's (without a name, the URL is: give each a name)", path, where, ep.Name, j)
		}
		seen[ep.Name] = i + 1
		eps = append(eps, ep)
	}
	return eps, nil
}

// parseError is the parser's error on one line, with what looks like a
// secret cut out: it quotes values, a secret put in the wrong place among them.
func parseError(err error) string {
	msg := err.Error()
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msg = strings.Join(te.Errors, "; ")
	}
	msg = strings.ReplaceAll(msg, "type webhooksvc.entry", "an endpoint")
	msg = strings.ReplaceAll(msg, "[]webhooksvc.entry", "a list of endpoints")
	return whsecRe.ReplaceAllString(strings.ReplaceAll(msg, "\n", " "), secretPrefix+"***")
}

func (e entry) endpoint() (*Endpoint, error) {
	u, err := checkURL(strings.TrimSpace(e.URL))
	if err != nil {
		return nil, fmt.Errorf("url: %w", err)
	}
	ep := &Endpoint{Name: strings.TrimSpace(e.Name), URL: u, Concurrency: e.Concurrency, Timeout: defaultTimeout}
	switch {
	case ep.Name == "":
		// Stable while the URL stays: the durable consumer (and so how far
		// this endpoint got) survives restarts.
		sum := sha256.Sum256([]byte(u.String()))
		ep.Name = "url_" + hex.EncodeToString(sum[:6])
	case !nameRe.MatchString(ep.Name):
		return nil, errors.New("name: must be 1 to 64 letters, digits, _ or -")
	}
	if ep.keys, err = decodeSecrets(e.Secret); err != nil {
		return nil, fmt.Errorf("secret: %w", err)
	}
	if ep.Events, err = checkEvents(e.Events); err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	switch {
	case ep.Concurrency == 0:
		ep.Concurrency = defaultConcurrency
	case ep.Concurrency < 1 || ep.Concurrency > maxConcurrency:
		return nil, fmt.Errorf("concurrency: %d is outside 1..%d", ep.Concurrency, maxConcurrency)
	}
	if e.Timeout != "" {
		d, err := time.ParseDuration(e.Timeout)
		if err != nil || d < minTimeout || d > maxTimeout {
			return nil, fmt.Errorf("timeout: %q is not a duration within %s..%s", e.Timeout, minTimeout, maxTimeout)
		}
		ep.Timeout = d
	}
	return ep, nil
}

// checkURL accepts an absolute http or https URL without user information
// (the signature authenticates the sender) or fragment. Its errors never
// repeat the URL: its query may hold a token.
func checkURL(s string) (*url.URL, error) {
	if s == "" {
		return nil, errors.New("missing")
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return nil, errors.New("not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, errors.New("must be an http:// or https:// URL")
	case u.Host == "" || u.Hostname() == "":
		return nil, errors.New("has no host")
	case u.User != nil:
		return nil, errors.New("must not carry user information (the signature authenticates wxlogin)")
	case u.Fragment != "" || strings.Contains(s, "#"):
		return nil, errors.New("must not have a fragment")
	}
	return u, nil
}

// decodeSecrets decodes one or more whsec_ secrets separated by spaces
// (several while rotating: each signs). Errors never show a secret.
func decodeSecrets(s string) ([][]byte, error) {
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return nil, errors.New("missing (whsec_ and the base64 of 24 to 64 random bytes, e.g. from `openssl rand -base64 32`)")
	}
	keys := make([][]byte, 0, len(fields))
	for i, f := range fields {
		b64, ok := strings.CutPrefix(f, secretPrefix)
		if !ok {
			return nil, fmt.Errorf("secret %d of %d: must start with %s", i+1, len(fields), secretPrefix)
		}
		key, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			key, err = base64.RawStdEncoding.DecodeString(b64) // without the padding
		}
		if err != nil {
			return nil, fmt.Errorf("secret %d of %d: the part after %s is not base64", i+1, len(fields), secretPrefix)
		}
		if len(key) < minSecretBytes || len(key) > maxSecretBytes {
			return nil, fmt.Errorf("secret %d of %d: decodes to %d bytes, want %d to %d", i+1, len(fields), len(key), minSecretBytes, maxSecretBytes)
		}
		keys = append(keys, key)
	}
	return keys, nil
}

// knownTypes are the event types wxlogin publishes (docs/nats.md), which a
// type without wildcards must be one of: a misspelt type would match
// nothing, silently.
func knownTypes() []string {
	types := []string{
		identity.EventUserCreated, identity.EventUserBound, identity.EventUserLoggedIn, identity.EventUserUpdated,
		identity.EventOASubscribed, identity.EventOAUnsubscribed, identity.EventOAScanned, identity.EventOAMessage,
	}
	for _, action := range []string{identity.AuditUserDisable, identity.AuditUserEnable, identity.AuditUserGrantAdmin,
		identity.AuditUserRevokeAdmin, identity.AuditSessionRevoke, identity.AuditSessionsRevokeAll} {
		types = append(types, "admin."+action)
	}
	return types
}

// checkEvents validates the event types; none (or only ">") is all.
func checkEvents(types []string) ([]string, error) {
	out := make([]string, 0, len(types))
	for _, t := range types {
		t = strings.TrimSpace(t)
		switch {
		case !typeRe.MatchString(t):
			return nil, fmt.Errorf("%q is not an event type (e.g. user.created, user.*, oa.>)", t)
		case !strings.ContainsAny(t, "*>") && !slices.Contains(knownTypes(), t):
			return nil, fmt.Errorf("%q is not a type wxlogin publishes (%s)", t, strings.Join(knownTypes(), ", "))
		}
		for _, o := range out {
			if subjectsOverlap(o, t) {
				return nil, fmt.Errorf("%q and %q overlap: list each event once", o, t)
			}
		}
		out = append(out, t)
	}
	if len(out) == 1 && out[0] == ">" {
		return nil, nil
	}
	return out, nil
}

// subjectsOverlap reports whether some subject matches both patterns
// (JetStream refuses a consumer whose filters overlap).
func subjectsOverlap(a, b string) bool {
	at, bt := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(at) && i < len(bt); i++ {
		switch {
		case at[i] == ">" || bt[i] == ">":
			return true
		case at[i] != "*" && bt[i] != "*" && at[i] != bt[i]:
			return false
		}
	}
	return len(at) == len(bt)
}

// subjects are the endpoint's filters on the event stream.
func (e *Endpoint) subjects() []string {
	if len(e.Events) == 0 {
		return []string{identity.EventStreamSubjects}
	}
	out := make([]string, len(e.Events))
	for i, t := range e.Events {
		out[i] = "wxlogin.events." + t
	}
	return out
}

// host is the URL without path, query or user: what logs may show.
func (e *Endpoint) host() string { return e.URL.Scheme + "://" + e.URL.Host }

// LogValue shows the endpoint without its path, query or secrets.
func (e *Endpoint) LogValue() slog.Value {
	events := "all"
	if len(e.Events) > 0 {
		events = strings.Join(e.Events, ",")
	}
	return slog.GroupValue(slog.String("name", e.Name), slog.String("host", e.host()),
		slog.String("events", events), slog.Int("concurrency", e.Concurrency), slog.Duration("timeout", e.Timeout))
}

// endpointsLog logs eps by name, each as its LogValue (a slice's elements
// would be printed field by field, the URL's query and all).
func endpointsLog(eps []*Endpoint) slog.Value {
	attrs := make([]slog.Attr, len(eps))
	for i, ep := range eps {
		attrs[i] = slog.Any(ep.Name, ep)
	}
	return slog.GroupValue(attrs...)
}

// String is LogValue's text, for %v.
func (e *Endpoint) String() string {
	return fmt.Sprintf("{name:%s host:%s events:%v}", e.Name, e.host(), e.Events)
}
