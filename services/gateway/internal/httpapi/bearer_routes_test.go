package httpapi

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/jwtverify"
)

// probeKeys accept the tokens "live" and "revoked" (their jti is their name).
type probeKeys struct{}

func (probeKeys) Verify(tok string) (*jwtverify.Claims, error) {
	if tok != "live" && tok != "revoked" {
		return nil, api.Errorf(api.CodeTokenInvalid, "unknown token")
	}
	return &jwtverify.Claims{ID: tok, Subject: "u1", SessionID: "s1", ExpiresAt: time.Now().Add(time.Hour)}, nil
}

func (probeKeys) JWKS() ([]byte, error) { return []byte(`{"keys":[]}`), nil }

// probeRevocations know the token "revoked" as revoked.
type probeRevocations struct{}

func (probeRevocations) Check(c *jwtverify.Claims) error {
	if c.ID == "revoked" {
		return api.Errorf(api.CodeTokenRevoked, "revoked")
	}
	return nil
}

func (probeRevocations) Add(*jwtverify.Claims)     {}
func (probeRevocations) AddUser(string, time.Time) {}

// signedOnlyRoutes may accept a revoked token (middleware.RequireSignedToken);
// each is justified where it is registered. Every other Bearer route must
// refuse one.
var signedOnlyRoutes = []string{
	"POST /api/v1/auth/logout", // logging out twice is not an error (tokens.go)
}

var routeParam = regexp.MustCompile(`[:*][^/]+`)

// TestBearerRoutesCheckRevocations walks the router's route table: a route
// that answers a request without a token with the Bearer challenge is a
// Bearer route, and it must refuse a revoked token unless it is listed in
// signedOnlyRoutes. A new route that forgets the revocation check fails here.
func TestBearerRoutesCheckRevocations(t *testing.T) {
	r, ok := New(Options{Log: slog.New(slog.DiscardHandler), Keys: probeKeys{}, Revocations: probeRevocations{},
		Identity: ctxIdentity{}, Session: &ctxSession{}}).(*gin.Engine)
	if !ok {
		t.Fatal("New no longer returns a *gin.Engine; adapt the route listing")
	}
	probe := func(method, path, token string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		return w
	}
	var live, signed []string
	for _, rt := range r.Routes() {
		path := routeParam.ReplaceAllString(rt.Path, "x")
		w := probe(rt.Method, path, "")
		if w.Code != http.StatusUnauthorized || !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Bearer") {
			continue // no Bearer middleware on this route
		}
		route := rt.Method + " " + rt.Path
		w = probe(rt.Method, path, "revoked")
		if w.Code == http.StatusUnauthorized && strings.Contains(w.Body.String(), `"code":"token_revoked"`) {
			live = append(live, route)
			continue
		}
		signed = append(signed, route)
		if !slices.Contains(signedOnlyRoutes, route) {
			t.Errorf("%s accepts a revoked token (%d %s): use the server's liveToken", route, w.Code, w.Body.String())
		}
	}
	sort.Strings(live)
	sort.Strings(signed)
	t.Logf("live-token routes: %v; signed-only: %v", live, signed)
	// The probe itself must keep finding the Bearer routes.
	for _, must := range []string{"GET /api/v1/me", "PATCH /api/v1/me", "GET /api/v1/admin/users/:id"} {
		if !slices.Contains(live, must) {
			t.Errorf("%s is not found as a live-token route", must)
		}
	}
	for _, route := range signedOnlyRoutes {
		if !slices.Contains(signed, route) {
			t.Errorf("%s is listed as signed-only but is not (found live: %v)", route, slices.Contains(live, route))
		}
	}
}
