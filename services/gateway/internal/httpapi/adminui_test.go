package httpapi

import (
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// TestAdminConsolePage: /admin is a page of our own files under a strict
// CSP, and its script keeps tokens out of storage and builds no markup.
func TestAdminConsolePage(t *testing.T) {
	h := New(Options{Log: slog.New(slog.DiscardHandler), Web: WebOptions{WechatOpenBase: "https://open.weixin.qq.com"}})
	html := wantSelfContainedPage(t, h, "/admin",
		"default-src 'self'", "script-src 'self';", "style-src 'self';", "connect-src 'self';",
		"img-src 'self' data: https:;", "frame-src 'self' https://open.weixin.qq.com;",
		"object-src 'none'", "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'")

	page := serveTest(h, http.MethodGet, "/admin", nil)
	csp := page.Header().Get("Content-Security-Policy")
	if strings.Contains(csp, "unsafe") || strings.Contains(csp, "*") {
		t.Errorf("CSP %q allows inline code or every origin", csp)
	}
	if page.Header().Get("Referrer-Policy") != "no-referrer" || page.Header().Get("X-Frame-Options") != "DENY" {
		t.Errorf("headers %v: want Referrer-Policy no-referrer, X-Frame-Options DENY", page.Header())
	}

	js := serveTest(h, http.MethodGet, "/admin/assets/admin.js", nil).Body.String()
	t.Run("script", func(t *testing.T) {
		for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
			"localStorage", "sessionStorage", "indexedDB", "document.cookie"} {
			if strings.Contains(js, bad) {
				t.Errorf("admin.js uses %s", bad)
			}
		}
		// The one absolute URL is the SVG namespace of the placeholder avatar.
		if others := regexp.MustCompile(`https?://[^"'\s)]*`).FindAllString(strings.ReplaceAll(js, "http://www.w3.org/2000/svg", ""), -1); len(others) > 0 {
			t.Errorf("admin.js names other origins: %v", others)
		}
		for _, m := range regexp.MustCompile(`fetch\(\s*([^,)]+)`).FindAllStringSubmatch(js, -1) {
			if arg := strings.TrimSpace(m[1]); arg != "path" && arg != "url" && !strings.HasPrefix(arg, `"api/v1/`) {
				t.Errorf("fetch(%s): want a relative api/v1 URL", arg)
			}
		}
	})
	t.Run("every text has both languages", func(t *testing.T) {
		for _, m := range regexp.MustCompile(`data-i18n(?:-placeholder)?="([a-z0-9_]+)"`).FindAllStringSubmatch(html, -1) {
			if n := len(regexp.MustCompile(`\b` + m[1] + `: "`).FindAllString(js, -1)); n != 2 {
				t.Errorf("text %s is defined %d times in admin.js, want once per language", m[1], n)
			}
		}
	})
	t.Run("unknown asset", func(t *testing.T) {
		w := serveTest(h, http.MethodGet, "/admin/assets/adminui.go", nil)
		if w.Code != http.StatusNotFound || w.Header().Get("Content-Type") != "application/problem+json" {
			t.Errorf("%d %q", w.Code, w.Header().Get("Content-Type"))
		}
	})
	t.Run("no WeChat base: frames from this origin only", func(t *testing.T) {
		if got := adminCSP(""); !strings.Contains(got, "frame-src 'self';") {
			t.Errorf("CSP %q", got)
		}
	})
}
