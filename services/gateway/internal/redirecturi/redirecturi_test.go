package redirecturi

import (
	"strings"
	"testing"
)

// TestCheck: a redirect_uri passes only under a configured prefix, compared
// as a parsed URL: look-alike hosts, user info, other schemes or ports,
// sibling paths, dot segments and encoded tricks are refused.
func TestCheck(t *testing.T) {
	a, err := Parse([]string{"https://good.example/app", " https://Shop.Example:8443/h5/ ", "http://127.0.0.1:8080/demo", ""})
	if err != nil {
		t.Fatal(err)
	}
	if a.Len() != 3 {
		t.Fatalf("Len = %d", a.Len())
	}
	for _, ok := range []string{
		"https://good.example/app",
		"https://good.example/app/",
		"https://good.example/app/done?x=1&y=2",
		"https://GOOD.example:443/app/x",
		"https://shop.example:8443/h5/",
		"https://shop.example:8443/h5/page",
		"http://127.0.0.1:8080/demo?tab=oa",
	} {
		if _, err := a.Check(ok); err != nil {
			t.Errorf("%s refused: %v", ok, err)
		}
	}
	for _, bad := range []string{
		"",
		"https://good.example.evil/app",
		"https://good.example.evil.com/app",
		"https://evil.example/app",
		"https://good.example@evil.example/app",
		"https://evil.example@good.example/app",
		"https://good.example:444/app",
		"http://good.example/app",
		"https://good.example/application",
		"https://good.example/",
		"https://good.example/ap",
		"https://good.example/app/../admin",
		"https://good.example/app/./x",
		"https://good.example/app/%2e%2e/admin",
		"https://good.example/app%2F..%2Fadmin",
		"https://good.example/app/x#frag",
		"https://good.example\\@evil.example/app",
		"https://good.example/app/\\evil",
		"https://good.example/app/ x",
		"https://good.example/app/\x00",
		"//good.example/app",
		"/app",
		"javascript:alert(1)//good.example/app",
		"https:good.example/app",
		"https://shop.example:8443/h5",
		"https://shop.example/h5/",
		"http://127.0.0.1:8081/demo",
		"http://localhost:8080/demo",
		"https://good.example/app/" + strings.Repeat("a", MaxLength),
	} {
		if u, err := a.Check(bad); err == nil {
			t.Errorf("%q allowed as %v", bad, u)
		}
	}
}

func TestParseRejects(t *testing.T) {
	for _, bad := range []string{"good.example/app", "ftp://good.example/", "https://u:p@good.example/", "https://good.example/?q=1",
		"https://good.example/#f", "https:///app", "https://good.example/a/../b"} {
		if _, err := Parse([]string{bad}); err == nil {
			t.Errorf("prefix %q accepted", bad)
		}
	}
	var empty Allowlist
	if _, err := empty.Check("https://good.example/"); err == nil {
		t.Error("the empty allowlist allowed a URL")
	}
}
