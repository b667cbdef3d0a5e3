package identitysvc_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/identity"
	"github.com/wxlogin/wxlogin/shared/natstest"
	"github.com/wxlogin/wxlogin/shared/poll"
	"github.com/wxlogin/wxlogin/shared/wechat"
	"github.com/wxlogin/wxlogin/shared/wechat/fakewechat"
)

func ctx5s(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// wantCode fails unless err carries code.
func wantCode(t *testing.T, err error, code api.Code) *api.Error {
	t.Helper()
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != code {
		t.Fatalf("err = %v, want code %s", err, code)
	}
	return ae
}

// mpCode mints a mini-program login code for u.
func (e *env) mpCode(t *testing.T, u fakewechat.User) (string, fakewechat.User) {
	t.Helper()
	code, user, err := e.fake.MintCode(fakewechat.DevMiniProgramAppID, u)
	if err != nil {
		t.Fatal(err)
	}
	return code, user
}

// webCode gets a website login code for u the way a person does: scan the
// QR page of a qrconnect URL and allow.
func (e *env) webCode(t *testing.T, u fakewechat.User) string {
	t.Helper()
	qr := wechat.New(wechat.Options{OpenBase: e.wxURL}).QRConnectURL(fakewechat.DevWebAppID,
		"https://login.example.com/api/v1/auth/web/callback", "state-1")
	redirect, err := e.fake.ScanAndConfirm(qr, u, true)
	if err != nil {
		t.Fatal(err)
	}
	ru, err := url.Parse(redirect)
	if err != nil || ru.Query().Get("code") == "" || ru.Query().Get("state") != "state-1" {
		t.Fatalf("redirect %q: %v", redirect, err)
	}
	return ru.Query().Get("code")
}

// mpLogin logs u in on the mini-program and fails the test on an error.
func (s *service) mpLogin(t *testing.T, u fakewechat.User, p *identity.Profile) identity.LoginResult {
	t.Helper()
	code, _ := s.mpCode(t, u)
	res, err := s.client.MiniProgramLogin(ctx5s(t), identity.MiniProgramLoginRequest{Code: code, Profile: p})
	if err != nil {
		t.Fatalf("mini-program login: %v", err)
	}
	return res
}

// register creates a password account and fails the test on an error.
func (s *service) register(t *testing.T, username, password string) identity.LoginResult {
	t.Helper()
	res, err := s.client.Register(ctx5s(t), identity.RegisterRequest{Username: username, Password: password})
	if err != nil {
		t.Fatalf("register %s: %v", username, err)
	}
	return res
}

// events returns the events of type typ about userID on the stream, oldest
// first, once the relay has published the outbox (it deletes what it
// published, so the stream is where they are).
func (e *env) events(t *testing.T, typ, userID string) []identity.Event {
	t.Helper()
	poll.Until(t, 15*time.Second, "the outbox to drain", func() bool {
		var n int
		return e.db.Get(&n, `SELECT count(*) FROM outbox`) == nil && n == 0
	})
	js, err := jetstream.New(natstest.Connect(t, e.ns))
	if err != nil {
		t.Fatal(err)
	}
	var out []identity.Event
	for _, m := range streamMessages(t, js) {
		if m.Subject != "wxlogin.events."+typ {
			continue
		}
		var ev identity.Event
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.User.ID == userID {
			out = append(out, ev)
		}
	}
	return out
}

func (e *env) makeAdmin(t *testing.T, userID string) {
	t.Helper()
	if _, err := e.db.Exec(`UPDATE users SET is_admin = true WHERE id = $1`, userID); err != nil {
		t.Fatal(err)
	}
}

// waitServing waits until an identity instance answers (after another
// instance stopped, this one).
func (s *service) waitServing(t *testing.T) {
	t.Helper()
	poll.Until(t, 15*time.Second, "identity answering", func() bool {
		_, err := s.client.GetUser(ctx5s(t), "00000000-0000-0000-0000-000000000000")
		return api.CodeOf(err) == api.CodeNotFound
	})
}
