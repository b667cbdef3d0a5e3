package apps

import (
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

func TestLoadRejects(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"badkind.yaml": "- {name: a, kind: app, appid: wx1}\n",
		"noappid.yaml": "- {name: a, kind: web}\n",
		"dup.yaml":     "- {name: a, kind: web, appid: wx1}\n- {name: a, kind: web, appid: wx2}\n",
		"bad.json":     "{not json",
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
