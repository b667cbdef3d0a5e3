package redirecturi

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzCheck: whatever Check lets through is, reparsed, on the prefix's
// scheme and exact host, under its path by whole segments, with no user
// information, fragment or dot segment: never another site.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{"https://good.example/app/x?y=1", "https://good.example.evil/app", "https://good.example@evil/app",
		"https://good.example/app/../x", "https://good.example/app%2f..", "https://GOOD.example:443/app", "https://good.example\\@evil/app",
		"https://good.example/app#x", "https://[::1]/app", "https://good.example/app;x"} {
		f.Add(s)
	}
	a, err := Parse([]string{"https://good.example/app"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := a.Check(raw)
		if err != nil {
			return
		}
		again, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("%q allowed but does not parse: %v", raw, err)
		}
		if again.Scheme != "https" || host(again) != "good.example" || again.User != nil || again.Fragment != "" || strings.Contains(raw, "#") {
			t.Fatalf("%q allowed: scheme %q host %q user %v fragment %q", raw, again.Scheme, again.Host, again.User, again.Fragment)
		}
		if u.Path != "/app" && !strings.HasPrefix(u.Path, "/app/") {
			t.Fatalf("%q allowed with path %q", raw, u.Path)
		}
		for _, seg := range strings.Split(u.Path, "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("%q allowed with a dot segment", raw)
			}
		}
	})
}
