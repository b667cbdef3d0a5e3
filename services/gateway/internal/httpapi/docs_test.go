package httpapi

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
)

// testEngine is the real router with no backends: enough to list routes and
// serve the static ones.
func testEngine(t *testing.T) *gin.Engine {
	t.Helper()
	r, ok := New(Options{Log: slog.New(slog.DiscardHandler)}).(*gin.Engine)
	if !ok {
		t.Fatal("New no longer returns a *gin.Engine; adapt the route listing")
	}
	return r
}

type openAPIDoc struct {
	OpenAPI string                                `json:"openapi"`
	Paths   map[string]map[string]json.RawMessage `json:"paths"`
	Tags    []struct {
		Name string `json:"name"`
	} `json:"tags"`
	Components map[string]map[string]json.RawMessage `json:"components"`
}

type openAPIOperation struct {
	OperationID string                     `json:"operationId"`
	Tags        []string                   `json:"tags"`
	Summary     string                     `json:"summary"`
	Responses   map[string]json.RawMessage `json:"responses"`
	Parameters  []struct {
		Name string `json:"name"`
		In   string `json:"in"`
	} `json:"parameters"`
}

func loadOpenAPI(t *testing.T) openAPIDoc {
	t.Helper()
	var doc openAPIDoc
	if err := json.Unmarshal(openAPIJSON, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	return doc
}

var ginParam = regexp.MustCompile(`[:*]([A-Za-z0-9_]+)`)

// TestOpenAPIMatchesRoutes fails when a route is added without documenting
// it, or documented without existing: both directions, HEAD included.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc := loadOpenAPI(t)
	documented := map[string]bool{}
	for p, ops := range doc.Paths {
		for m := range ops {
			switch m {
			case "get", "head", "post", "put", "patch", "delete", "options", "trace":
				documented[strings.ToUpper(m)+" "+p] = true
			}
		}
	}
	served := map[string]bool{}
	for _, rt := range testEngine(t).Routes() {
		served[rt.Method+" "+ginParam.ReplaceAllString(rt.Path, "{$1}")] = true
	}
	var undocumented, phantom []string
	for k := range served {
		if !documented[k] {
			undocumented = append(undocumented, k)
		}
	}
	for k := range documented {
		if !served[k] {
			phantom = append(phantom, k)
		}
	}
	sort.Strings(undocumented)
	sort.Strings(phantom)
	if len(undocumented) > 0 {
		t.Errorf("routes missing from openapi.json:\n  %s", strings.Join(undocumented, "\n  "))
	}
	if len(phantom) > 0 {
		t.Errorf("openapi.json documents routes the gateway does not serve:\n  %s", strings.Join(phantom, "\n  "))
	}
	for _, must := range []string{"GET /openapi.json", "GET /docs"} {
		if !served[must] {
			t.Errorf("%s is not served", must)
		}
	}
	// Metrics are for the ops listener (WXLOGIN_METRICS_ADDR) only.
	if served["GET /metrics"] {
		t.Error("GET /metrics is served on the public API")
	}
}

// TestOpenAPIDocument checks what a hand-written document gets wrong:
// dangling $refs, duplicate operation ids, untagged operations, undeclared
// path parameters.
func TestOpenAPIDocument(t *testing.T) {
	doc := loadOpenAPI(t)
	if !strings.HasPrefix(doc.OpenAPI, "3.1.") {
		t.Errorf("openapi %q, want 3.1.x", doc.OpenAPI)
	}

	refRE := regexp.MustCompile(`"\$ref":\s*"#/components/([A-Za-z]+)/([^"]+)"`)
	for _, m := range refRE.FindAllStringSubmatch(string(openAPIJSON), -1) {
		if _, ok := doc.Components[m[1]][m[2]]; !ok {
			t.Errorf("dangling $ref #/components/%s/%s", m[1], m[2])
		}
	}

	var tags []string
	for _, tg := range doc.Tags {
		tags = append(tags, tg.Name)
	}
	ids := map[string]string{}
	pathParam := regexp.MustCompile(`\{([^}]+)\}`)
	for p, ops := range doc.Paths {
		for m, raw := range ops {
			var op openAPIOperation
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Errorf("%s %s: %v", m, p, err)
				continue
			}
			where := strings.ToUpper(m) + " " + p
			if op.OperationID == "" || op.Summary == "" || len(op.Responses) == 0 {
				t.Errorf("%s: needs operationId, summary and responses", where)
			}
			if prev, dup := ids[op.OperationID]; dup {
				t.Errorf("%s: operationId %q already used by %s", where, op.OperationID, prev)
			}
			ids[op.OperationID] = where
			if len(op.Tags) != 1 || !slices.Contains(tags, op.Tags[0]) {
				t.Errorf("%s: tags %v, want one declared tag", where, op.Tags)
			}
			for _, pm := range pathParam.FindAllStringSubmatch(p, -1) {
				found := false
				for _, prm := range op.Parameters {
					found = found || (prm.In == "path" && prm.Name == pm[1])
				}
				if !found {
					t.Errorf("%s: path parameter %q not declared", where, pm[1])
				}
			}
		}
	}

	// Every contract code is documented.
	var codes struct {
		Enum []string `json:"enum"`
	}
	if err := json.Unmarshal(doc.Components["schemas"]["ErrorCode"], &codes); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"invalid_request", "code_missing", "wechat_code_invalid", "wechat_code_used", "invalid_credentials",
		"token_invalid", "token_expired", "token_revoked", "refresh_token_reused", "wechat_not_bound", "forbidden", "user_disabled",
		"not_found", "qr_ticket_not_found", "qr_ticket_expired", "qr_wrong_browser", "invalid_redirect_uri", "login_code_invalid", "snapshot_user", "username_taken", "identity_already_bound", "last_login_method",
		"rate_limited", "wechat_rate_limited", "wechat_error", "wechat_unavailable", "service_unavailable", "internal_error"} {
		if !slices.Contains(codes.Enum, c) {
			t.Errorf("ErrorCode lacks %s", c)
		}
	}
}

func serveTest(h http.Handler, method, target string, header map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func TestDocsPage(t *testing.T) {
	h := testEngine(t)

	page := serveTest(h, http.MethodGet, "/docs", nil)
	if page.Code != http.StatusOK || !strings.HasPrefix(page.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("GET /docs: %d %q", page.Code, page.Header().Get("Content-Type"))
	}
	csp := page.Header().Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	html := page.Body.String()
	if strings.Contains(html, "<style") || regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]`).MatchString(html) {
		t.Error("the page has inline script or style, which its CSP forbids")
	}

	// Every asset the page loads is same-origin and served.
	attrRE := regexp.MustCompile(`(?i)\b(?:src|href)\s*=\s*"([^"]*)"`)
	refs := attrRE.FindAllStringSubmatch(html, -1)
	if len(refs) < 2 {
		t.Fatalf("page references %d assets; want its script and stylesheet", len(refs))
	}
	for _, m := range refs {
		ref := m[1]
		t.Run(ref, func(t *testing.T) {
			if strings.Contains(ref, "//") || strings.Contains(ref, ":") {
				t.Fatalf("%q is not a same-origin relative reference", ref)
			}
			target := "/" + strings.TrimPrefix(ref, "/") // relative to /docs, i.e. the root
			w := serveTest(h, http.MethodGet, target, nil)
			if w.Code != http.StatusOK {
				t.Fatalf("GET %s: %d", target, w.Code)
			}
			ct := w.Header().Get("Content-Type")
			switch {
			case strings.HasSuffix(ref, ".js") && !strings.HasPrefix(ct, "text/javascript"),
				strings.HasSuffix(ref, ".css") && !strings.HasPrefix(ct, "text/css"),
				strings.HasSuffix(ref, ".json") && ct != "application/json":
				t.Errorf("%s served as %q", ref, ct)
			}
			if w.Header().Get("X-Content-Type-Options") != "nosniff" {
				t.Error("no nosniff")
			}
		})
	}

	// The script fetches the document itself, relative to the page, and
	// builds the DOM without innerHTML.
	js := serveTest(h, http.MethodGet, "/docs/assets/docs.js", nil).Body.String()
	if !strings.Contains(js, `fetch("openapi.json"`) || strings.Contains(js, "innerHTML") || regexp.MustCompile(`https?://`).MatchString(js) {
		t.Error("docs.js must fetch openapi.json same-origin, use no innerHTML and name no other origin")
	}

	t.Run("the spec is served as embedded", func(t *testing.T) {
		w := serveTest(h, http.MethodGet, "/openapi.json", nil)
		body, _ := io.ReadAll(w.Body)
		if w.Code != http.StatusOK || string(body) != string(openAPIJSON) || w.Header().Get("ETag") == "" {
			t.Fatalf("GET /openapi.json: %d, %d bytes, ETag %q", w.Code, len(body), w.Header().Get("ETag"))
		}
		again := serveTest(h, http.MethodGet, "/openapi.json", map[string]string{"If-None-Match": w.Header().Get("ETag")})
		if again.Code != http.StatusNotModified {
			t.Errorf("conditional GET: %d, want 304", again.Code)
		}
	})
	t.Run("unknown asset", func(t *testing.T) {
		w := serveTest(h, http.MethodGet, "/docs/assets/secret.go", nil)
		if w.Code != http.StatusNotFound || w.Header().Get("Content-Type") != "application/problem+json" {
			t.Errorf("%d %q", w.Code, w.Header().Get("Content-Type"))
		}
	})
}
