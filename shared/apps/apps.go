// Package apps is the list of WeChat apps a deployment serves: the default
// mini-program, website, official-account and mobile apps from the
// environment plus any listed in WXLOGIN_APPS_FILE. identity uses the secrets
// (and an official account's message token and EncodingAESKey); session and
// the gateway only names and appids.
package apps

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/wxlogin/wxlogin/shared/api"
)

// Kinds of app: the identity kinds of shared/api.
const (
	KindMiniProgram     = api.KindMiniProgram
	KindWeb             = api.KindWeb
	KindOfficialAccount = api.KindOfficialAccount
	KindApp             = api.KindApp
)

// kinds are the kinds an app may have, in the order error messages list them.
var kinds = []string{KindMiniProgram, KindWeb, KindOfficialAccount, KindApp}

// App is one WeChat app. Secret, Token and EncodingAESKey never leave
// identity: they are masked in logs.
type App struct {
	Name   string `json:"name" yaml:"name"`
	Kind   string `json:"kind" yaml:"kind"`
	AppID  string `json:"appid" yaml:"appid"`
	Secret string `json:"secret" yaml:"secret"`
	// Token is an official account's message token (the server URL's
	// signatures); EncodingAESKey its safe-mode key, empty for plaintext.
	Token          string `json:"token,omitempty" yaml:"token"`
	EncodingAESKey string `json:"encoding_aes_key,omitempty" yaml:"encoding_aes_key"`
}

// LogValue keeps the secret out of every log line.
func (a App) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", a.Name), slog.String("kind", a.Kind), slog.String("appid", a.AppID))
}

// String keeps the secrets out of %v, which is also how a text log prints an
// App inside a slice or struct (slog calls LogValue only on the attribute
// itself, not on its elements).
func (a App) String() string {
	return fmt.Sprintf("{name:%s kind:%s appid:%s}", a.Name, a.Kind, a.AppID)
}

// Config is the part of the environment that lists apps.
type Config struct {
	MiniProgramAppID  string `env:"WXLOGIN_MINIPROGRAM_APPID"`
	MiniProgramSecret string `env:"WXLOGIN_MINIPROGRAM_SECRET"`
	WebAppID          string `env:"WXLOGIN_WEB_APPID"`
	WebSecret         string `env:"WXLOGIN_WEB_SECRET"`
	OAAppID           string `env:"WXLOGIN_OA_APPID"`
	OASecret          string `env:"WXLOGIN_OA_SECRET"`
	OAToken           string `env:"WXLOGIN_OA_TOKEN"`
	OAAESKey          string `env:"WXLOGIN_OA_AES_KEY"`
	AppAppID          string `env:"WXLOGIN_APP_APPID"`
	AppSecret         string `env:"WXLOGIN_APP_SECRET"`
	AppsFile          string `env:"WXLOGIN_APPS_FILE"`
}

// Registry finds apps by name (or the default of a kind) and by appid.
type Registry struct {
	byName   map[string]App
	byAppID  map[string]App
	defaults map[string]App
}

// Load builds the registry. The environment's apps are named after their
// kinds ("miniprogram", "web", "officialaccount", "app") and are the defaults
// of their kind; otherwise the first listed app of a kind is its default.
func Load(cfg Config) (*Registry, error) {
	var list []App
	if cfg.MiniProgramAppID != "" {
		list = append(list, App{Name: KindMiniProgram, Kind: KindMiniProgram, AppID: cfg.MiniProgramAppID, Secret: cfg.MiniProgramSecret})
	}
	if cfg.WebAppID != "" {
		list = append(list, App{Name: KindWeb, Kind: KindWeb, AppID: cfg.WebAppID, Secret: cfg.WebSecret})
	}
	if cfg.OAAppID != "" {
		if err := CheckToken(cfg.OAToken); err != nil {
			return nil, fmt.Errorf("WXLOGIN_OA_TOKEN: %w", err)
		}
		if _, err := AESKey(cfg.OAAESKey); err != nil {
			return nil, fmt.Errorf("WXLOGIN_OA_AES_KEY: %w", err)
		}
		list = append(list, App{Name: KindOfficialAccount, Kind: KindOfficialAccount, AppID: cfg.OAAppID, Secret: cfg.OASecret,
			Token: cfg.OAToken, EncodingAESKey: cfg.OAAESKey})
	}
	if cfg.AppAppID != "" {
		list = append(list, App{Name: KindApp, Kind: KindApp, AppID: cfg.AppAppID, Secret: cfg.AppSecret})
	}
	if cfg.AppsFile != "" {
		more, err := readFile(cfg.AppsFile)
		if err != nil {
			return nil, fmt.Errorf("WXLOGIN_APPS_FILE: %w", err)
		}
		list = append(list, more...)
	}
	r := &Registry{byName: map[string]App{}, byAppID: map[string]App{}, defaults: map[string]App{}}
	for i, a := range list {
		a.Name, a.Kind, a.AppID = strings.TrimSpace(a.Name), strings.TrimSpace(a.Kind), strings.TrimSpace(a.AppID)
		if err := r.check(i, a); err != nil {
			return nil, fmt.Errorf("WXLOGIN_APPS_FILE: %w", err)
		}
		r.byName[a.Name] = a
		r.byAppID[a.AppID] = a
		if _, ok := r.defaults[a.Kind]; !ok {
			r.defaults[a.Kind] = a
		}
	}
	return r, nil
}

func (r *Registry) check(i int, a App) error {
	switch {
	case a.Name == "" || a.AppID == "":
		return fmt.Errorf("app %d: name and appid are required", i+1)
	case !slices.Contains(kinds, a.Kind):
		return fmt.Errorf("app %q: kind must be one of %s", a.Name, strings.Join(kinds, ", "))
	case a.Kind != KindOfficialAccount && (a.Token != "" || a.EncodingAESKey != ""):
		return fmt.Errorf("app %q: token and encoding_aes_key belong to an officialaccount app only", a.Name)
	}
	if err := CheckToken(a.Token); err != nil {
		return fmt.Errorf("app %q: token: %w", a.Name, err)
	}
	if _, err := AESKey(a.EncodingAESKey); err != nil {
		return fmt.Errorf("app %q: encoding_aes_key: %w", a.Name, err)
	}
	if _, dup := r.byName[a.Name]; dup {
		return fmt.Errorf("app name %q listed twice", a.Name)
	}
	if _, dup := r.byAppID[a.AppID]; dup {
		return fmt.Errorf("appid %q listed twice (also in one of the WXLOGIN_*_APPID variables?)", a.AppID)
	}
	return nil
}

// CheckToken checks an official account's message token as WeChat's console
// takes it: 3 to 32 letters and digits. "" (not configured) passes.
func CheckToken(token string) error {
	if token == "" {
		return nil
	}
	if len(token) < 3 || len(token) > 32 {
		return fmt.Errorf("must be 3 to 32 characters, has %d", len(token))
	}
	for _, r := range token {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9') {
			return errors.New("must be letters and digits only")
		}
	}
	return nil
}

// AESKey decodes an official account's EncodingAESKey: 43 characters of
// base64 without the padding, 32 bytes once "=" is added. "" (plaintext
// mode) gives nil.
func AESKey(encoded string) ([]byte, error) {
	if encoded == "" {
		return nil, nil
	}
	if len(encoded) != 43 {
		return nil, fmt.Errorf("must be 43 characters of base64, has %d", len(encoded))
	}
	// Not Strict: the console's random keys need not end in zero bits.
	key, err := base64.StdEncoding.DecodeString(encoded + "=")
	if err != nil || len(key) != 32 {
		return nil, errors.New("must be 43 characters of base64 (A-Z, a-z, 0-9, +, /) without padding")
	}
	return key, nil
}

// Lookup returns the app called name of the given kind; "" is the kind's default.
func (r *Registry) Lookup(name, kind string) (App, bool) {
	if name == "" {
		a, ok := r.defaults[kind]
		return a, ok
	}
	a, ok := r.byName[name]
	if !ok || a.Kind != kind {
		return App{}, false
	}
	return a, true
}

// ByAppID returns the app with that appid.
func (r *Registry) ByAppID(appid string) (App, bool) {
	a, ok := r.byAppID[appid]
	return a, ok
}

// All returns every app, secrets included, sorted by name. Do not log it:
// log the Registry, whose LogValue leaves the secrets out.
func (r *Registry) All() []App {
	out := make([]App, 0, len(r.byName))
	for _, a := range r.byName {
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b App) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// LogValue lists the apps as name -> kind and appid, never a secret, token
// or key.
func (r *Registry) LogValue() slog.Value {
	if r == nil {
		return slog.GroupValue()
	}
	all := r.All()
	attrs := make([]slog.Attr, 0, len(all))
	for _, a := range all {
		attrs = append(attrs, slog.Group(a.Name, slog.String("kind", a.Kind), slog.String("appid", a.AppID)))
	}
	return slog.GroupValue(attrs...)
}

// WithoutSecrets returns a copy of the registry with every secret, token and
// key removed, for services that need only names and appids (session,
// gateway): a secret they never hold is one they cannot leak.
func (r *Registry) WithoutSecrets() *Registry {
	c := &Registry{byName: map[string]App{}, byAppID: map[string]App{}, defaults: map[string]App{}}
	strip := func(a App) App { return App{Name: a.Name, Kind: a.Kind, AppID: a.AppID} }
	for k, a := range r.byName {
		c.byName[k] = strip(a)
	}
	for k, a := range r.byAppID {
		c.byAppID[k] = strip(a)
	}
	for k, a := range r.defaults {
		c.defaults[k] = strip(a)
	}
	return c
}

func readFile(path string) ([]App, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var list []App
	if strings.HasSuffix(path, ".json") {
		err = json.Unmarshal(b, &list)
	} else {
		err = yaml.Unmarshal(b, &list) // YAML is a superset of JSON
	}
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	return list, nil
}
