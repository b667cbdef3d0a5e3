package apps

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "apps.yaml")
	os.WriteFile(file, []byte("- {name: shop, kind: miniprogram, appid: wxshop, secret: s1}\n- {name: site2, kind: web, appid: wxsite2, secret: s2}\n"), 0o600)
	r, err := Load(Config{MiniProgramAppID: "wxmp", MiniProgramSecret: "mps", WebAppID: "wxweb", WebSecret: "webs", AppsFile: file})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, kind, want string
		ok               bool
	}{
		{"", KindMiniProgram, "wxmp", true},
		{"", KindWeb, "wxweb", true},
		{"shop", KindMiniProgram, "wxshop", true},
		{"site2", KindWeb, "wxsite2", true},
		{"shop", KindWeb, "", false}, // a name of the other kind
		{"nope", KindMiniProgram, "", false},
	}
	for _, c := range cases {
		a, ok := r.Lookup(c.name, c.kind)
		if ok != c.ok || a.AppID != c.want {
			t.Errorf("Lookup(%q,%q) = %q,%v want %q,%v", c.name, c.kind, a.AppID, ok, c.want, c.ok)
		}
	}
	if a, ok := r.ByAppID("wxsite2"); !ok || a.Secret != "s2" {
		t.Errorf("ByAppID: %+v %v", a, ok)
	}
	if v := r.byName["shop"].LogValue().String(); strings.Contains(v, "s1") {
		t.Errorf("LogValue shows the secret: %s", v)
	}
}

// aesKey is a well-formed EncodingAESKey: 43 characters of base64.
const aesKey = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"

func TestLoadOfficialAccountAndMobileApp(t *testing.T) {
	file := filepath.Join(t.TempDir(), "apps.yaml")
	os.WriteFile(file, []byte("- {name: oa2, kind: officialaccount, appid: wxoa2, secret: s2, token: tok456}\n- {name: ios, kind: app, appid: wxios, secret: s3}\n"), 0o600)
	r, err := Load(Config{OAAppID: "wxoa", OASecret: "s1", OAToken: "tok123", OAAESKey: aesKey, AppAppID: "wxapp", AppSecret: "sa", AppsFile: file})
	if err != nil {
		t.Fatal(err)
	}
	if a, ok := r.Lookup("", KindOfficialAccount); !ok || a.Name != KindOfficialAccount || a.AppID != "wxoa" || a.Token != "tok123" || a.EncodingAESKey != aesKey {
		t.Errorf("default official account: %+v %v", a, ok)
	}
	if a, ok := r.Lookup("oa2", KindOfficialAccount); !ok || a.Token != "tok456" || a.EncodingAESKey != "" {
		t.Errorf("oa2: %+v %v", a, ok)
	}
	if a, ok := r.Lookup("", KindApp); !ok || a.AppID != "wxapp" || a.Secret != "sa" {
		t.Errorf("default mobile app: %+v %v", a, ok)
	}
	if a, ok := r.Lookup("ios", KindApp); !ok || a.AppID != "wxios" {
		t.Errorf("ios: %+v %v", a, ok)
	}
	if _, ok := r.Lookup("ios", KindOfficialAccount); ok {
		t.Error("an app found as an official account")
	}
	key, err := AESKey(aesKey)
	if err != nil || len(key) != 32 {
		t.Errorf("AESKey = %d bytes, %v", len(key), err)
	}
}

// A bad token or key in the environment names its variable.
func TestLoadRejectsOfficialAccountEnv(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{OAAppID: "wxoa", OAToken: "x"}, "WXLOGIN_OA_TOKEN: "},
		{Config{OAAppID: "wxoa", OAToken: strings.Repeat("t", 33)}, "WXLOGIN_OA_TOKEN: "},
		{Config{OAAppID: "wxoa", OAToken: "tok123", OAAESKey: aesKey + "A"}, "WXLOGIN_OA_AES_KEY: "},
		{Config{OAAppID: "wxoa", OAToken: "tok123", OAAESKey: aesKey[:42] + "!"}, "WXLOGIN_OA_AES_KEY: "},
	} {
		if _, err := Load(tc.cfg); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("Load(%v) = %v, want %s…", tc.cfg.OAAESKey, err, tc.want)
		}
	}
}

func TestLoadRejects(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"badkind.yaml":    "- {name: a, kind: mobile, appid: wx1}\n",
		"webtoken.yaml":   "- {name: a, kind: web, appid: wx1, token: tok123}\n",
		"shorttoken.yaml": "- {name: a, kind: officialaccount, appid: wx1, token: ab}\n",
		"badtoken.yaml":   "- {name: a, kind: officialaccount, appid: wx1, token: tok-123}\n",
		"shortkey.yaml":   "- {name: a, kind: officialaccount, appid: wx1, token: tok123, encoding_aes_key: abc}\n",
		"paddedkey.yaml":  "- {name: a, kind: officialaccount, appid: wx1, token: tok123, encoding_aes_key: " + aesKey[:42] + "=}\n",
		"notbase64.yaml":  "- {name: a, kind: officialaccount, appid: wx1, token: tok123, encoding_aes_key: " + aesKey[:42] + "*}\n",
		"noappid.yaml":    "- {name: a, kind: web}\n",
		"dup.yaml":        "- {name: a, kind: web, appid: wx1}\n- {name: a, kind: web, appid: wx2}\n",
		"bad.json":        "{not json",
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o600)
		if _, err := Load(Config{AppsFile: p}); err == nil || !strings.Contains(err.Error(), "WXLOGIN_APPS_FILE") {
			t.Errorf("%s: err = %v, want an error naming WXLOGIN_APPS_FILE", name, err)
		}
	}
	if _, err := Load(Config{AppsFile: filepath.Join(dir, "missing.yaml")}); err == nil {
		t.Error("missing file accepted")
	}
}

// The registry logs names, kinds and appids through every handler, and no
// secret in any form: as the registry, as an App, or an App printed with %v.
func TestRegistryLogsNoSecret(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "apps.json")
	os.WriteFile(file, []byte(`[{"name":"shop","kind":"miniprogram","appid":"wxshop","secret":"file-secret-1"}]`), 0o600)
	r, err := Load(Config{MiniProgramAppID: "wxmp", MiniProgramSecret: "env-secret-2", WebAppID: "wxweb", WebSecret: "env-secret-3",
		OAAppID: "wxoa", OASecret: "env-secret-4", OAToken: "envToken5", OAAESKey: aesKey, AppAppID: "wxapp", AppSecret: "env-secret-6", AppsFile: file})
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{"file-secret-1", "env-secret-2", "env-secret-3", "env-secret-4", "envToken5", aesKey, "env-secret-6"}
	handlers := []struct {
		name string
		new  func(io.Writer) slog.Handler
	}{
		{"text", func(w io.Writer) slog.Handler { return slog.NewTextHandler(w, nil) }},
		{"json", func(w io.Writer) slog.Handler { return slog.NewJSONHandler(w, nil) }},
	}
	for _, h := range handlers {
		t.Run(h.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(h.new(&buf))
			log.Info("apps", "apps", r)
			log.Info("app", "app", r.byName["shop"])
			log.Info("oa", "app", r.byName[KindOfficialAccount])
			log.Info("printed", "app", fmt.Sprint(r.byName["shop"]), "oa", fmt.Sprintf("%+v", r.byName[KindOfficialAccount]), "apps", fmt.Sprintf("%+v", r.All()))
			out := buf.String()
			for _, s := range secrets {
				if strings.Contains(out, s) {
					t.Errorf("secret %q logged:\n%s", s, out)
				}
			}
			for _, want := range []string{"wxshop", "wxmp", "wxweb", "wxoa", "wxapp", "miniprogram", "officialaccount"} {
				if !strings.Contains(out, want) {
					t.Errorf("%q missing from the log:\n%s", want, out)
				}
			}
		})
	}
}

func TestWithoutSecrets(t *testing.T) {
	r, err := Load(Config{MiniProgramAppID: "wxmp", MiniProgramSecret: "mps", WebAppID: "wxweb", WebSecret: "webs",
		OAAppID: "wxoa", OASecret: "oas", OAToken: "tok123", OAAESKey: aesKey})
	if err != nil {
		t.Fatal(err)
	}
	c := r.WithoutSecrets()
	for _, a := range c.All() {
		if a.Secret != "" || a.Token != "" || a.EncodingAESKey != "" {
			t.Errorf("%s keeps a secret: %+v", a.Name, a)
		}
	}
	lookups := []struct {
		name string
		get  func(*Registry) (App, bool)
	}{
		{"default", func(r *Registry) (App, bool) { return r.Lookup("", KindWeb) }},
		{"by name", func(r *Registry) (App, bool) { return r.Lookup(KindMiniProgram, KindMiniProgram) }},
		{"by appid", func(r *Registry) (App, bool) { return r.ByAppID("wxweb") }},
		{"official account", func(r *Registry) (App, bool) { return r.Lookup("", KindOfficialAccount) }},
	}
	for _, l := range lookups {
		t.Run(l.name, func(t *testing.T) {
			a, ok := l.get(c)
			if !ok || a.AppID == "" || a.Secret != "" {
				t.Errorf("copy: %+v %v", a, ok)
			}
			if orig, _ := l.get(r); orig.Secret == "" {
				t.Error("the original lost its secret")
			}
		})
	}
}
