package httpapi

import (
	"log/slog"
	"maps"
	"net/http"
	"regexp"
	"slices"
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
		en, zh := textKeys(t, js, "en"), textKeys(t, js, "zh")
		if !maps.Equal(en, zh) {
			t.Errorf("the languages differ in keys:\n en %v\n zh %v", slices.Sorted(maps.Keys(en)), slices.Sorted(maps.Keys(zh)))
		}
		used := regexp.MustCompile(`data-i18n(?:-placeholder)?="([a-z0-9_]+)"`).FindAllStringSubmatch(html, -1)
		used = append(used, regexp.MustCompile(`\bt\("([a-z0-9_]+)"[,)]`).FindAllStringSubmatch(js, -1)...)
		for _, m := range used {
			if !en[m[1]] {
				t.Errorf("text %s is used but not defined", m[1])
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

// textKeys are the keys of admin.js's texts in one language: the lines of
// its block in TEXT, which starts at `    lang: {` and ends at `    }`.
func textKeys(t *testing.T, js, lang string) map[string]bool {
	t.Helper()
	start := strings.Index(js, "\n    "+lang+": {\n")
	if start < 0 {
		t.Fatalf("admin.js has no %s texts", lang)
	}
	block := js[start:]
	block = block[:strings.Index(block, "\n    }")]
	keys := map[string]bool{}
	for _, m := range regexp.MustCompile(`\b([a-z0-9_]+): "`).FindAllStringSubmatch(block, -1) {
		if keys[m[1]] {
			t.Errorf("%s text %s defined twice", lang, m[1])
		}
		keys[m[1]] = true
	}
	if len(keys) < 50 {
		t.Fatalf("%s: %d texts, the block was not found whole", lang, len(keys))
	}
	return keys
}
