package sessionsvc_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/session"
	"github.com/wxlogin/wxlogin/shared/jwtverify"
	"github.com/wxlogin/wxlogin/shared/natstest"

	"github.com/wxlogin/wxlogin/services/session/internal/kvstate"
)

// The website QR flow over NATS, as the gateway drives it: create, the
// callback's complete, the poll's consume; apps from env and from a file.
func TestQROverNATS(t *testing.T) {
	s := natstest.Start(t)
	nc := natstest.Connect(t, s)
	file := filepath.Join(t.TempDir(), "apps.yaml")
	if err := os.WriteFile(file, []byte("- {name: shop, kind: web, appid: wx3333333333333333, secret: shop-secret}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config(s)
	cfg.WebAppID = "wx2222222222222222"
	cfg.AppsFile = file
	start(t, cfg, nc)
	client := session.NewClient(nc)
	jwks, err := client.JWKS(call(t))
	if err != nil {
		t.Fatal(err)
	}
	v, err := jwtverify.NewEdDSA(jwks, jwtverify.Options{Issuer: "wxlogin", Audience: "wxlogin"})
	if err != nil {
		t.Fatal(err)
	}
	user := &api.User{ID: "8d4c2b1a-0f9e-4d7c-8b6a-5e4d3c2b1a09", Nickname: "Alice"}

	tests := []struct {
		app, wantAppID string
	}{
		{"", "wx2222222222222222"},
		{"web", "wx2222222222222222"},
		{"shop", "wx3333333333333333"},
	}
	for _, tc := range tests {
		t.Run("app "+tc.app, func(t *testing.T) {
			tk, err := client.QRCreate(call(t), session.QRCreateRequest{App: tc.app})
			if err != nil {
				t.Fatal(err)
			}
			if tk.AppID != tc.wantAppID || tk.ExpiresIn != 300 {
				t.Fatalf("ticket %+v", tk)
			}
			st, err := client.QRComplete(call(t), session.QRCompleteRequest{Ticket: tk.Ticket, User: user})
			if err != nil || st.Status != session.QRConfirmed {
				t.Fatalf("complete = %+v, %v", st, err)
			}
			res, err := client.QRConsume(call(t), session.QRConsumeRequest{Ticket: tk.Ticket, PollToken: tk.PollToken})
			if err != nil {
				t.Fatal(err)
			}
			c, err := v.Verify(res.AccessToken)
			if err != nil {
				t.Fatal(err)
			}
			if c.Subject != user.ID || c.ClientID != tc.wantAppID || c.Kind != api.KindWeb || res.User.Nickname != "Alice" {
				t.Fatalf("claims %+v, result %+v", c, res)
			}
			_, err = client.QRConsume(call(t), session.QRConsumeRequest{Ticket: tk.Ticket, PollToken: tk.PollToken})
			if api.CodeOf(err) != api.CodeQRTicketNotFound {
				t.Fatalf("second consume: %v", err)
			}
		})
	}
	t.Run("unknown app", func(t *testing.T) {
		_, err := client.QRCreate(call(t), session.QRCreateRequest{App: "nope"})
		if api.CodeOf(err) != api.CodeInvalidRequest {
			t.Fatalf("err %v, want invalid_request", err)
		}
	})
}

// Revoking a user over NATS writes the user key and ends every session of
// that user, and only that user's.
func TestRevokeUserOverNATS(t *testing.T) {
	s := natstest.Start(t)
	nc := natstest.Connect(t, s)
	start(t, config(s), nc)
	client := session.NewClient(nc)
	const alice, bob = "8d4c2b1a-0f9e-4d7c-8b6a-5e4d3c2b1a09", "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
	var refresh []string
	for _, u := range []string{alice, alice, bob} {
		tok, err := client.Issue(call(t), session.IssueRequest{UserID: u, Kind: api.KindPassword})
		if err != nil {
			t.Fatal(err)
		}
		refresh = append(refresh, tok.RefreshToken)
	}
	if err := client.Revoke(call(t), session.RevokeRequest{UserID: alice}); err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	kv, err := js.KeyValue(call(t), session.BucketRevoked)
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(call(t), session.RevokedUserKey(alice))
	if err != nil {
		t.Fatal(err)
	}
	r, err := session.DecodeRevocation(e.Value())
	if err != nil || r.At == 0 || r.Exp != r.At+int64(config(s).AccessTTL/time.Second) {
		t.Fatalf("user revocation %s (%v), want exp = at + the access TTL", e.Value(), err)
	}
	// The cut-off for refreshes lives as long as a refresh token.
	sessions, err := js.KeyValue(call(t), session.BucketSessions)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sessions.Get(call(t), kvstate.UserCutoffKey(alice)); err != nil {
		t.Fatalf("no cut-off in %s: %v", session.BucketSessions, err)
	}
	// A login racing the revocation gets no tokens.
	if _, err := client.Issue(call(t), session.IssueRequest{UserID: alice, Kind: api.KindPassword}); api.CodeOf(err) != api.CodeTokenRevoked {
		t.Fatalf("Issue right after the revocation: %v, want token_revoked", err)
	}
	for i, want := range []api.Code{api.CodeTokenRevoked, api.CodeTokenRevoked, ""} {
		_, err := client.Refresh(call(t), refresh[i])
		if got := api.CodeOf(err); err != nil && got != want || err == nil && want != "" {
			t.Errorf("refresh %d: %v, want %q", i, err, want)
		}
	}
}
