package gatewaysvc_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/services/gateway/gatewaysvc"
	"github.com/wxlogin/wxlogin/shared/api/session"
	"github.com/wxlogin/wxlogin/shared/poll"
)

const (
	introspectURL    = "/api/v1/auth/introspect"
	introspectSecret = "s3cret-of-at-least-thirty-two-bytes!"
)

func basic(id, secret string) map[string]string {
	return map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret))}
}

func introspect(t *testing.T, base, token string, header map[string]string) response {
	t.Helper()
	return do(t, context.Background(), http.MethodPost, base+introspectURL, "application/x-www-form-urlencoded",
		url.Values{"token": {token}, "token_type_hint": {"access_token"}}.Encode(), header)
}

// TestIntrospection: RFC 7662 against the gateway's own keys and revocation
// view: client authentication, active and inactive tokens, the per-client
// limit, and 503 (never "active") while the revocation view is stale.
func TestIntrospection(t *testing.T) {
	e := newEnv(t)
	base, w := e.upWeb(func(c *gatewaysvc.Config) {
		c.IntrospectClients = "api:" + introspectSecret + ", other:" + strings.Repeat("x", 32) + ",watch:" + strings.Repeat("w", 32)
		c.IntrospectRateLimit = "1/h,burst=2000"
		c.RevocationMaxStale = 300 * time.Millisecond
	})
	client := basic("api", introspectSecret)
	sid := uuid.NewString()
	live := e.se.token(testUserID, func(c jwt.MapClaims) { c["sid"] = sid })

	t.Run("client authentication", func(t *testing.T) {
		for name, h := range map[string]map[string]string{
			"none":           nil,
			"wrong secret":   basic("api", introspectSecret+"x"),
			"unknown id":     basic("nobody", introspectSecret),
			"other's secret": basic("other", introspectSecret),
			"Bearer":         bearer(live),
		} {
			t.Run(name, func(t *testing.T) {
				r := introspect(t, base, live, h)
				wantProblem(t, r, http.StatusUnauthorized, "invalid_credentials")
				if got := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Basic ") {
					t.Errorf("WWW-Authenticate %q, want a Basic challenge", got)
				}
				if _, ok := r.body["active"]; ok {
					t.Errorf("an unauthenticated caller learned about the token: %s", r.raw)
				}
			})
		}
	})

	t.Run("live token", func(t *testing.T) {
		r := introspect(t, base, live, client)
		wantStatus(t, r, http.StatusOK)
		if r.body["active"] != true || r.body["sub"] != testUserID || r.body["sid"] != sid || r.body["client_id"] != testAppID ||
			r.body["kind"] != "miniprogram" || r.body["exp"] == nil || r.body["iat"] == nil || r.body["iss"] != testIssuer {
			t.Fatalf("introspection of a live token: %s", r.raw)
		}
		if cc := r.header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("Cache-Control %q, want no-store", cc)
		}
	})

	t.Run("no call to another service", func(t *testing.T) {
		var calls atomic.Int64
		for _, subj := range []string{"wxlogin.identity.>", "wxlogin.session.>"} {
			sub, err := e.nc.Subscribe(subj, func(m *nats.Msg) {
				if m.Subject != session.SubjectJWKS { // the periodic key refresh
					calls.Add(1)
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Unsubscribe()
		}
		must(t, e.nc.Flush())
		for range 20 {
			if r := introspect(t, base, live, client); r.body["active"] != true {
				t.Fatalf("introspection: %s", r.raw)
			}
		}
		// A GET /me makes one call: the subscription would have seen ours.
		wantStatus(t, get(t, base+meURL, bearer(live)), http.StatusOK)
		must(t, e.nc.Flush())
		poll.Until(t, 5*time.Second, "the /me call to be seen", func() bool { return calls.Load() >= 1 })
		if n := calls.Load(); n != 1 {
			t.Fatalf("%d NATS requests to identity or session for 20 introspections and one /me, want 1 (the /me)", n)
		}
	})

	inactive := map[string]string{
		"garbage":        "not-a-jwt",
		"oversize":       strings.Repeat("A", 5000),
		"expired":        e.se.token(testUserID, func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Hour).Unix() }),
		"wrong audience": e.se.token(testUserID, func(c jwt.MapClaims) { c["aud"] = "elsewhere" }),
	}
	for name, token := range inactive {
		t.Run(name, func(t *testing.T) {
			r := introspect(t, base, token, client)
			wantStatus(t, r, http.StatusOK)
			if r.raw != `{"active":false}` {
				t.Fatalf("body %s, want exactly {\"active\":false}", r.raw)
			}
		})
	}
	t.Run("no token", func(t *testing.T) {
		wantProblem(t, introspect(t, base, "", client), http.StatusBadRequest, "invalid_request")
	})

	t.Run("revoked", func(t *testing.T) {
		w.putRevocation(t, session.RevokedSIDKey(sid), session.Revocation{At: time.Now().Unix()})
		poll.Until(t, 10*time.Second, "the revocation to reach introspection", func() bool {
			return introspect(t, base, live, client).raw == `{"active":false}`
		})
	})

	t.Run("per-client limit", func(t *testing.T) {
		// The other client's bucket is its own.
		for {
			r := introspect(t, base, live, client)
			if r.status == http.StatusTooManyRequests {
				wantProblem(t, r, http.StatusTooManyRequests, "rate_limited")
				if r.header.Get("Retry-After") == "" {
					t.Error("429 without Retry-After")
				}
				break
			}
			wantStatus(t, r, http.StatusOK)
		}
		wantStatus(t, introspect(t, base, live, basic("other", strings.Repeat("x", 32))), http.StatusOK)
	})

	t.Run("stale revocation view: 503", func(t *testing.T) {
		fresh := e.se.token(testUserID, nil)
		other := basic("watch", strings.Repeat("w", 32))
		if r := introspect(t, base, fresh, other); r.body["active"] != true {
			t.Fatalf("before: %s", r.raw)
		}
		if err := w.deleteRevokedBucket(); err != nil {
			t.Fatal(err)
		}
		poll.Until(t, 10*time.Second, "introspection to refuse with a stale view", func() bool {
			r := introspect(t, base, fresh, other)
			if r.status == http.StatusOK {
				if r.body["active"] != true {
					t.Fatalf("while the view goes stale: %s", r.raw)
				}
				return false
			}
			wantProblem(t, r, http.StatusServiceUnavailable, "service_unavailable")
			return true
		})
	})
}

// TestMetadata: RFC 8414 metadata from WXLOGIN_PUBLIC_URL and the issuer.
func TestMetadata(t *testing.T) {
	e := newEnv(t)
	base, _ := e.upWeb(nil)
	r := get(t, base+"/.well-known/oauth-authorization-server", nil)
	wantStatus(t, r, http.StatusOK)
	if r.body["issuer"] != testIssuer || r.body["jwks_uri"] != testPublicURL+"/.well-known/jwks.json" ||
		r.body["introspection_endpoint"] != testPublicURL+introspectURL {
		t.Fatalf("metadata: %s", r.raw)
	}
	methods, _ := r.body["introspection_endpoint_auth_methods_supported"].([]any)
	if len(methods) != 1 || methods[0] != "client_secret_basic" {
		t.Fatalf("auth methods: %s", r.raw)
	}
}

// deleteRevokedBucket removes wxlogin_revoked: the gateway's watch turns unhealthy.
func (w *webStub) deleteRevokedBucket() error {
	js, err := jetstream.New(w.e.nc)
	if err != nil {
		return err
	}
	return js.DeleteKeyValue(context.Background(), session.BucketRevoked)
}
