// Package apps is the list of WeChat apps a deployment serves: the default
// mini-program and website apps from the environment plus any listed in
// WXLOGIN_APPS_FILE. identity uses the secrets; session and the gateway only
// names and appids.
package apps

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Kinds of app.
const (
	KindMiniProgram = "miniprogram"
	KindWeb         = "web"
)

// App is one WeChat app. Secret never leaves identity: it is masked in logs.
type App struct {
	Name   string `json:"name" yaml:"name"`
	Kind   string `json:"kind" yaml:"kind"`
	AppID  string `json:"appid" yaml:"appid"`
	Secret string `json:"secret" yaml:"secret"`
}

// LogValue keeps the secret out of every log line.
func (a App) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", a.Name), slog.String("kind", a.Kind), slog.String("appid", a.AppID))
}

// String keeps the secret out of %v, which is also how a text log prints an
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
	AppsFile          string `env:"WXLOGIN_APPS_FILE"`
}

// Registry finds apps by name (or the default of a kind) and by appid.
type Registry struct {
	byName   map[string]App
	byAppID  map[string]App
	defaults map[string]App
}

// Load builds the registry. The environment's apps are named "miniprogram"
// and "web" and are the defaults of their kind; otherwise the first listed
// app of a kind is its default.
func Load(cfg Config) (*Registry, error) {
	var list []App
	if cfg.MiniProgramAppID != "" {
		list = append(list, App{Name: KindMiniProgram, Kind: KindMiniProgram, AppID: cfg.MiniProgramAppID, Secret: cfg.MiniProgramSecret})
	}
	if cfg.WebAppID != "" {
		list = append(list, App{Name: KindWeb, Kind: KindWeb, AppID: cfg.WebAppID, Secret: cfg.WebSecret})
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
	case a.Kind != KindMiniProgram && a.Kind != KindWeb:
		return fmt.Errorf("app %q: kind must be %q or %q", a.Name, KindMiniProgram, KindWeb)
	}
	if _, dup := r.byName[a.Name]; dup {
		return fmt.Errorf("app name %q listed twice", a.Name)
	}
	if _, dup := r.byAppID[a.AppID]; dup {
		return fmt.Errorf("appid %q listed twice (also in WXLOGIN_MINIPROGRAM_APPID / WXLOGIN_WEB_APPID?)", a.AppID)
	}
	return nil
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

// LogValue lists the apps as name -> kind and appid, never a secret.
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

// WithoutSecrets returns a copy of the registry with every secret removed,
// for services that need only names and appids (session, gateway): a secret
// they never hold is one they cannot leak.
func (r *Registry) WithoutSecrets() *Registry {
	c := &Registry{byName: map[string]App{}, byAppID: map[string]App{}, defaults: map[string]App{}}
	for k, a := range r.byName {
		a.Secret = ""
		c.byName[k] = a
	}
	for k, a := range r.byAppID {
		a.Secret = ""
		c.byAppID[k] = a
	}
	for k, a := range r.defaults {
		a.Secret = ""
		c.defaults[k] = a
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
