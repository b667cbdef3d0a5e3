// Package natsconn is the one way a wxlogin process connects to NATS: the
// credentials from the environment, its own inbox prefix, reconnecting
// forever, and no credential in any log line or error.
package natsconn

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wxlogin/wxlogin/shared/envconfig"
)

// Credentials are how a process proves which NATS user it is: a user and
// password, a .creds file (JWT and nkey seed), or neither (then the
// userinfo of the URL, or no authentication at all).
type Credentials struct {
	User     string `env:"WXLOGIN_NATS_USER"`
	Password string `env:"WXLOGIN_NATS_PASSWORD"`
	// CredsFile is a .creds file for NATS decentralized auth.
	CredsFile string `env:"WXLOGIN_NATS_CREDS"`
}

// Validate checks that the credentials name one way to authenticate; the
// error names the variable and never holds a secret.
func (c Credentials) Validate(urls string) error {
	inURL := hasUserinfo(urls)
	switch {
	case c.User != "" && c.Password == "":
		return errors.New("WXLOGIN_NATS_PASSWORD: must be set with WXLOGIN_NATS_USER")
	case c.Password != "" && c.User == "":
		return errors.New("WXLOGIN_NATS_USER: must be set with WXLOGIN_NATS_PASSWORD")
	case c.CredsFile != "" && c.User != "":
		return errors.New("WXLOGIN_NATS_CREDS: set either it or WXLOGIN_NATS_USER and WXLOGIN_NATS_PASSWORD, not both")
	case inURL && (c.User != "" || c.CredsFile != ""):
		return errors.New("WXLOGIN_NATS_URL: carries credentials, and WXLOGIN_NATS_USER or WXLOGIN_NATS_CREDS is set too: use one")
	}
	if c.CredsFile != "" {
		if _, err := os.Stat(c.CredsFile); err != nil {
			return fmt.Errorf("WXLOGIN_NATS_CREDS: %w", err)
		}
	}
	return nil
}

// LogValue shows which credentials are set, never the password.
func (c Credentials) LogValue() slog.Value {
	password := ""
	if c.Password != "" {
		password = "(set)"
	}
	return slog.GroupValue(
		slog.String("user", c.User),
		slog.String("password", password),
		slog.String("creds", c.CredsFile),
	)
}

// String is LogValue's text: %v of a config never prints the password.
func (c Credentials) String() string {
	return fmt.Sprintf("{User:%s Password:%s Creds:%s}", c.User, c.LogValue().Group()[1].Value, c.CredsFile)
}

// hasUserinfo reports whether any of the comma-separated URLs has userinfo.
func hasUserinfo(urls string) bool {
	for u := range strings.SplitSeq(urls, ",") {
		p, err := url.Parse(strings.TrimSpace(u))
		if err == nil && p.User != nil || err != nil && strings.Contains(u, "@") {
			return true
		}
	}
	return false
}

// The wxlogin NATS users (shared/natsauth says what each may do): one per
// service, plus events for the systems that read the event stream.
const (
	Gateway  = "gateway"
	Identity = "identity"
	Session  = "session"
	Events   = "events"
)

// InboxPrefix is the inbox prefix of the wxlogin NATS user (gateway,
// identity, session, events): replies to its requests arrive below it, and
// only that user may subscribe there.
func InboxPrefix(user string) string { return "_INBOX_" + user }

// ReconnectWait is the pause between reconnect attempts to the same server.
const ReconnectWait = 500 * time.Millisecond

// Options are one connection's settings.
type Options struct {
	// URL is WXLOGIN_NATS_URL: one URL or a comma-separated list, userinfo allowed.
	URL         string
	Credentials Credentials
	// Name is the connection's name as the server shows it (wxlogin-gateway, ...).
	Name string
	// Role is the wxlogin NATS user this process acts as; its inbox prefix
	// follows from it, whatever the credentials are.
	Role string
	// Retry starts in the background when no server is up yet instead of
	// failing (services); a one-shot command fails at once.
	Retry bool
	// DrainTimeout bounds a drain; zero is nats.go's default (30 s).
	DrainTimeout time.Duration
	Log          *slog.Logger
}

// Connect connects as o says, reconnecting forever once connected. Its
// error names WXLOGIN_NATS_URL and holds no credential.
func Connect(o Options) (*nats.Conn, error) {
	if err := o.Credentials.Validate(o.URL); err != nil {
		return nil, err
	}
	log := o.Log
	opts := []nats.Option{
		nats.Name(o.Name),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(o.Retry),
		nats.ReconnectWait(ReconnectWait),
		// Not ConnectedUrlRedacted: it keeps the user, which may be a token.
		nats.ConnectHandler(func(nc *nats.Conn) {
			log.Info("NATS connected", "url", envconfig.RedactURLs(nc.ConnectedUrl()))
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("NATS disconnected", "error", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("NATS reconnected", "url", envconfig.RedactURLs(nc.ConnectedUrl()))
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			log.Warn("NATS async error", "subject", subject, "error", err)
		}),
	}
	if o.Role != "" {
		opts = append(opts, nats.CustomInboxPrefix(InboxPrefix(o.Role)))
	}
	if o.DrainTimeout > 0 {
		opts = append(opts, nats.DrainTimeout(o.DrainTimeout))
	}
	switch c := o.Credentials; {
	case c.CredsFile != "":
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	case c.User != "":
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	}
	nc, err := nats.Connect(o.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS (WXLOGIN_NATS_URL %s): %w", envconfig.RedactURLs(o.URL), redact(err, o))
	}
	return nc, nil
}

func redact(err error, o Options) error {
	return envconfig.RedactError(err, o.URL, o.Credentials.Password)
}

// Drain lets in-flight messages finish, then closes nc; it waits for the
// close, at most timeout, so nothing of the connection outlives the caller.
func Drain(nc *nats.Conn, timeout time.Duration, log *slog.Logger) {
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if nc.IsClosed() {
		return
	}
	if err := nc.Drain(); err != nil {
		nc.Close()
		return
	}
	select {
	case <-closed:
	case <-time.After(timeout):
		log.Warn("NATS drain timed out")
		nc.Close()
	}
}

// Denied returns the permissions violation the server reported on nc since
// before (nc.LastError() taken then), or nil. A request whose subject the
// user may not publish to gets no answer, only this asynchronous error: a
// caller that timed out asks here whether it was refused rather than slow.
func Denied(nc *nats.Conn, before error) error {
	err := nc.LastError()
	if err == nil || err == before || !errors.Is(err, nats.ErrPermissionViolation) {
		return nil
	}
	return err
}
