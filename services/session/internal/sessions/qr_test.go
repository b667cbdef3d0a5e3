package sessions

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/session"
	"github.com/wxlogin/wxlogin/shared/apps"

	"github.com/wxlogin/wxlogin/services/session/internal/kvstate"
	"github.com/wxlogin/wxlogin/services/session/internal/tokens"
)

// bindToken is a bind token as identity makes them (32 random bytes).
const bindToken = "q0bIYw8mUhHcGz4Kx1r7n2VvN9pT3sLdE6aJfWkRuXo"

var alice = &api.User{ID: "8d4c2b1a-0f9e-4d7c-8b6a-5e4d3c2b1a09", Username: "wx_alice", Nickname: "Alice"}

func (f *fixture) qrCreate(t *testing.T) session.QRTicket {
	t.Helper()
	tk, err := f.svc.QRCreate(context.Background(), session.QRCreateRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func (f *fixture) confirm(t *testing.T, ticket string) {
	t.Helper()
	st, err := f.svc.QRComplete(context.Background(), session.QRCompleteRequest{Ticket: ticket, User: alice, IsNewUser: true})
	if err != nil || st.Status != session.QRConfirmed {
		t.Fatalf("complete = %+v, %v", st, err)
	}
}

func (f *fixture) record(t *testing.T, ticket string) session.QRRecord {
	t.Helper()
	rec, _, err := kvstate.NewTickets(f.buckets.QR).Get(context.Background(), ticket)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func TestQRCreate(t *testing.T) {
	f := newFixture(t)
	tk := f.qrCreate(t)
	for name, v := range map[string]string{"ticket": tk.Ticket, "poll token": tk.PollToken} {
		raw, err := base64.RawURLEncoding.Strict().DecodeString(v)
		if err != nil || len(raw)*8 < 128 {
			t.Errorf("%s %q: %d bits (%v)", name, v, len(raw)*8, err)
		}
	}
	if tk.Ticket == tk.PollToken || tk.AppID != webAppID || tk.ExpiresIn != int64(qrTTL/time.Second) {
		t.Errorf("ticket %+v", tk)
	}
	e, err := f.buckets.QR.Get(context.Background(), tk.Ticket)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(e.Value()), tk.PollToken) {
		t.Fatalf("KV value holds the poll token: %s", e.Value())
	}
	var rec session.QRRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(tk.PollToken))
	now := f.clock.Now()
	if rec.Status != session.QRPending || rec.PollTokenHash != hex.EncodeToString(sum[:]) || rec.AppID != webAppID ||
		rec.App != apps.KindWeb || !rec.CreatedAt.Equal(now) || !rec.ExpiresAt.Equal(now.Add(qrTTL)) || rec.User != nil {
		t.Errorf("record %+v", rec)
	}
	if other := f.qrCreate(t); other.Ticket == tk.Ticket || other.PollToken == tk.PollToken {
		t.Error("two tickets share a value")
	}
}

func TestQRCreateApps(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name string
		app  string
		want api.Code
	}{
		{"default web app", "", ""},
		{"web app by name", apps.KindWeb, ""},
		{"unknown app", "nope", api.CodeInvalidRequest},
		{"a mini-program is no website", apps.KindMiniProgram, api.CodeInvalidRequest},
		{"oversize name", strings.Repeat("a", 65), api.CodeInvalidRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.svc.QRCreate(context.Background(), session.QRCreateRequest{App: tc.app})
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantCode(t, err, tc.want)
		})
	}
	t.Run("no web app configured", func(t *testing.T) {
		reg, err := apps.Load(apps.Config{MiniProgramAppID: "wx1111111111111111"})
		if err != nil {
			t.Fatal(err)
		}
		svc := New(Deps{Apps: reg, Tickets: f.svc.Tickets, QRTTL: qrTTL, Log: f.svc.Log})
		_, err = svc.QRCreate(context.Background(), session.QRCreateRequest{})
		wantCode(t, err, api.CodeInvalidRequest)
		if !strings.Contains(err.Error(), "WXLOGIN_WEB_APPID") {
			t.Errorf("message %q does not say what to set", err)
		}
	})
}

func TestQRComplete(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	t.Run("confirm stores the user", func(t *testing.T) {
		tk := f.qrCreate(t)
		f.confirm(t, tk.Ticket)
		rec := f.record(t, tk.Ticket)
		if rec.Status != session.QRConfirmed || rec.User == nil || rec.User.ID != alice.ID || !rec.IsNewUser || rec.PollTokenHash == "" {
			t.Fatalf("record %+v", rec)
		}
	})
	t.Run("deny with default reason", func(t *testing.T) {
		tk := f.qrCreate(t)
		st, err := f.svc.QRComplete(ctx, session.QRCompleteRequest{Ticket: tk.Ticket, Denied: true})
		if err != nil || st.Status != session.QRDenied {
			t.Fatalf("complete = %+v, %v", st, err)
		}
		if rec := f.record(t, tk.Ticket); rec.Reason != "denied" || rec.User != nil {
			t.Fatalf("record %+v", rec)
		}
	})
	t.Run("second completion answers the stored status", func(t *testing.T) {
		tk := f.qrCreate(t)
		f.confirm(t, tk.Ticket)
		st, err := f.svc.QRComplete(ctx, session.QRCompleteRequest{Ticket: tk.Ticket, Denied: true, Reason: "late"})
		if err != nil || st.Status != session.QRConfirmed {
			t.Fatalf("second complete = %+v, %v", st, err)
		}
		if rec := f.record(t, tk.Ticket); rec.Status != session.QRConfirmed || rec.Reason != "" {
			t.Fatalf("record changed: %+v", rec)
		}
	})

	t.Run("not bound stores the bind token for the poller only", func(t *testing.T) {
		tk := f.qrCreate(t)
		st, err := f.svc.QRComplete(ctx, session.QRCompleteRequest{Ticket: tk.Ticket, BindToken: bindToken,
			Nickname: "微信小王", AvatarURL: "https://thirdwx.qlogo.cn/mmopen/w/132"})
		if err != nil || st.Status != session.QRNotBound {
			t.Fatalf("complete = %+v, %v", st, err)
		}
		rec := f.record(t, tk.Ticket)
		if rec.Status != session.QRNotBound || rec.BindToken != bindToken || rec.User != nil || rec.PollTokenHash == "" ||
			rec.Nickname != "微信小王" || rec.AvatarURL != "https://thirdwx.qlogo.cn/mmopen/w/132" {
			t.Fatalf("record %+v, want the bind token and whose WeChat it is", rec)
		}
		// Compare-and-set from pending: a later callback changes nothing.
		st, err = f.svc.QRComplete(ctx, session.QRCompleteRequest{Ticket: tk.Ticket, User: alice})
		if err != nil || st.Status != session.QRNotBound {
			t.Fatalf("second complete = %+v, %v", st, err)
		}
		// Consume hands out tokens of confirmed tickets only, and leaves the
		// ticket for the poller to read its bind token.
		_, err = f.svc.QRConsume(ctx, session.QRConsumeRequest{Ticket: tk.Ticket, PollToken: tk.PollToken})
		wantCode(t, err, api.CodeQRTicketNotFound)
		if rec := f.record(t, tk.Ticket); rec.Status != session.QRNotBound || rec.BindToken != bindToken {
			t.Fatalf("record after consume %+v", rec)
		}
		if strings.Contains(f.logs.String(), bindToken) {
			t.Error("the bind token is logged")
		}
	})
	t.Run("a not bound completion loses to an earlier confirm", func(t *testing.T) {
		tk := f.qrCreate(t)
		f.confirm(t, tk.Ticket)
		st, err := f.svc.QRComplete(ctx, session.QRCompleteRequest{Ticket: tk.Ticket, BindToken: bindToken})
		if err != nil || st.Status != session.QRConfirmed {
			t.Fatalf("complete = %+v, %v", st, err)
		}
		if rec := f.record(t, tk.Ticket); rec.BindToken != "" {
			t.Fatalf("record changed: %+v", rec)
		}
	})

	pending := f.qrCreate(t)
	unknown := base64.RawURLEncoding.EncodeToString(make([]byte, ticketBytes))
	bad := []struct {
		name string
		req  session.QRCompleteRequest
		want api.Code
	}{
		{"unknown ticket", session.QRCompleteRequest{Ticket: unknown, User: alice}, api.CodeQRTicketNotFound},
		{"malformed ticket", session.QRCompleteRequest{Ticket: "a.*", User: alice}, api.CodeQRTicketNotFound},
		{"empty ticket", session.QRCompleteRequest{User: alice}, api.CodeQRTicketNotFound},
		{"confirm without user", session.QRCompleteRequest{Ticket: pending.Ticket}, api.CodeInvalidRequest},
		{"confirm with a user without id", session.QRCompleteRequest{Ticket: pending.Ticket, User: &api.User{}}, api.CodeInvalidRequest},
		{"deny with a user", session.QRCompleteRequest{Ticket: pending.Ticket, Denied: true, User: alice}, api.CodeInvalidRequest},
		{"oversize reason", session.QRCompleteRequest{Ticket: pending.Ticket, Denied: true, Reason: strings.Repeat("r", 201)}, api.CodeInvalidRequest},
		{"bind token with a user", session.QRCompleteRequest{Ticket: pending.Ticket, User: alice, BindToken: bindToken}, api.CodeInvalidRequest},
		{"bind token and denied", session.QRCompleteRequest{Ticket: pending.Ticket, Denied: true, BindToken: bindToken}, api.CodeInvalidRequest},
		{"oversize bind token", session.QRCompleteRequest{Ticket: pending.Ticket, BindToken: strings.Repeat("b", 129)}, api.CodeInvalidRequest},
		{"nickname without a bind token", session.QRCompleteRequest{Ticket: pending.Ticket, User: alice, Nickname: "x"}, api.CodeInvalidRequest},
		{"oversize nickname", session.QRCompleteRequest{Ticket: pending.Ticket, BindToken: bindToken, Nickname: strings.Repeat("n", 257)}, api.CodeInvalidRequest},
		{"oversize avatar", session.QRCompleteRequest{Ticket: pending.Ticket, BindToken: bindToken, AvatarURL: strings.Repeat("a", 1025)}, api.CodeInvalidRequest},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.svc.QRComplete(ctx, tc.req)
			wantCode(t, err, tc.want)
		})
	}
	if rec := f.record(t, pending.Ticket); rec.Status != session.QRPending {
		t.Fatalf("a rejected completion changed the ticket: %+v", rec)
	}
}

// Two callbacks race: one confirms, one denies. Exactly one write lands, and
// both callers are told the status that is stored.
func TestQRCompleteConcurrent(t *testing.T) {
	f := newFixture(t)
	for i := range 5 {
		tk := f.qrCreate(t)
		reqs := []session.QRCompleteRequest{
			{Ticket: tk.Ticket, User: alice},
			{Ticket: tk.Ticket, Denied: true, Reason: "denied"},
		}
		answers := make([]string, len(reqs))
		var wg sync.WaitGroup
		start := make(chan struct{})
		for j, req := range reqs {
			wg.Go(func() {
				<-start
				st, err := f.svc.QRComplete(context.Background(), req)
				if err != nil {
					t.Errorf("round %d: complete: %v", i, err)
				}
				answers[j] = st.Status
			})
		}
		close(start)
		wg.Wait()
		stored := f.record(t, tk.Ticket).Status
		if answers[0] != stored || answers[1] != stored || stored == session.QRPending {
			t.Fatalf("round %d: answers %v, stored %s", i, answers, stored)
		}
	}
}

func TestQRConsume(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tk := f.qrCreate(t)
	f.confirm(t, tk.Ticket)
	other := f.qrCreate(t) // a real poll token, of another ticket

	bad := []struct {
		name string
		req  session.QRConsumeRequest
	}{
		{"wrong poll token", session.QRConsumeRequest{Ticket: tk.Ticket, PollToken: other.PollToken}},
		{"no poll token", session.QRConsumeRequest{Ticket: tk.Ticket}},
		{"malformed poll token", session.QRConsumeRequest{Ticket: tk.Ticket, PollToken: tk.PollToken + "x"}},
		{"unknown ticket", session.QRConsumeRequest{Ticket: base64.RawURLEncoding.EncodeToString(make([]byte, ticketBytes)), PollToken: tk.PollToken}},
		{"malformed ticket", session.QRConsumeRequest{Ticket: "*", PollToken: tk.PollToken}},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.svc.QRConsume(ctx, tc.req)
			wantCode(t, err, api.CodeQRTicketNotFound)
		})
	}
	if rec := f.record(t, tk.Ticket); rec.Status != session.QRConfirmed {
		t.Fatal("a rejected consume touched the ticket")
	}

	res, err := f.svc.QRConsume(ctx, session.QRConsumeRequest{Ticket: tk.Ticket, PollToken: tk.PollToken})
	if err != nil {
		t.Fatal(err)
	}
	if res.User.ID != alice.ID || res.User.Nickname != alice.Nickname || !res.IsNewUser || res.TokenType != "Bearer" ||
		res.ExpiresIn != int64(accessTTL/time.Second) || res.RefreshExpiresIn != int64(refreshTTL/time.Second) {
		t.Fatalf("result %+v", res)
	}
	c, err := f.verifier.Verify(res.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != alice.ID || c.Kind != api.KindWeb || c.ClientID != webAppID || c.SessionID == "" {
		t.Fatalf("claims %+v", c)
	}
	if fam := f.family(t, res.RefreshToken); fam.UserID != alice.ID || fam.Kind != api.KindWeb || fam.AppID != webAppID {
		t.Fatalf("family %+v", fam)
	}
	if _, err := f.refresh(res.RefreshToken); err != nil {
		t.Fatalf("refresh of QR tokens: %v", err)
	}
	// Consumed: gone from KV, and a second poll gets nothing.
	if _, err := f.buckets.QR.Get(ctx, tk.Ticket); err == nil {
		t.Fatal("consumed ticket still in KV")
	}
	_, err = f.svc.QRConsume(ctx, session.QRConsumeRequest{Ticket: tk.Ticket, PollToken: tk.PollToken})
	wantCode(t, err, api.CodeQRTicketNotFound)
	// And the callback cannot bring it back.
	_, err = f.svc.QRComplete(ctx, session.QRCompleteRequest{Ticket: tk.Ticket, User: alice})
	wantCode(t, err, api.CodeQRTicketNotFound)
}

func TestQRConsumeNotConfirmed(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	pending := f.qrCreate(t)
	denied := f.qrCreate(t)
	if _, err := f.svc.QRComplete(ctx, session.QRCompleteRequest{Ticket: denied.Ticket, Denied: true}); err != nil {
		t.Fatal(err)
	}
	for name, tk := range map[string]session.QRTicket{"pending": pending, "denied": denied} {
		t.Run(name, func(t *testing.T) {
			_, err := f.svc.QRConsume(ctx, session.QRConsumeRequest{Ticket: tk.Ticket, PollToken: tk.PollToken})
			wantCode(t, err, api.CodeQRTicketNotFound)
			if _, err := f.buckets.QR.Get(ctx, tk.Ticket); err != nil {
				t.Fatalf("ticket gone after a refused consume: %v", err)
			}
		})
	}
}

func TestQRConsumeConcurrentOneWinner(t *testing.T) {
	f := newFixture(t)
	tk := f.qrCreate(t)
	f.confirm(t, tk.Ticket)
	const n = 8
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		winners []session.QRConsumeResult
		codes   = map[api.Code]int{}
	)
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			res, err := f.svc.QRConsume(context.Background(), session.QRConsumeRequest{Ticket: tk.Ticket, PollToken: tk.PollToken})
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				winners = append(winners, res)
				return
			}
			codes[api.CodeOf(err)]++
		})
	}
	close(start)
	wg.Wait()
	if len(winners) != 1 || codes[api.CodeQRTicketNotFound] != n-1 {
		t.Fatalf("%d consumers got tokens, losers %v; want 1 and %d qr_ticket_not_found", len(winners), codes, n-1)
	}
	if _, err := f.verifier.Verify(winners[0].AccessToken); err != nil {
		t.Fatal(err)
	}
}

func TestQRExpiry(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	pending := f.qrCreate(t)
	confirmed := f.qrCreate(t)
	f.confirm(t, confirmed.Ticket)
	f.clock.Advance(qrTTL) // ExpiresAt is exclusive

	_, err := f.svc.QRComplete(ctx, session.QRCompleteRequest{Ticket: pending.Ticket, User: alice})
	wantCode(t, err, api.CodeQRTicketExpired)
	_, err = f.svc.QRConsume(ctx, session.QRConsumeRequest{Ticket: confirmed.Ticket, PollToken: confirmed.PollToken})
	wantCode(t, err, api.CodeQRTicketExpired)
	// The poll token is checked first: a stranger learns nothing.
	_, err = f.svc.QRConsume(ctx, session.QRConsumeRequest{Ticket: confirmed.Ticket, PollToken: pending.PollToken})
	wantCode(t, err, api.CodeQRTicketNotFound)
}

// A user revoked (disabled) between the scan and the poll gets no tokens.
func TestQRConsumeAfterUserRevoke(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tk := f.qrCreate(t)
	f.confirm(t, tk.Ticket)
	if _, err := f.svc.Revoke(ctx, session.RevokeRequest{UserID: alice.ID}); err != nil {
		t.Fatal(err)
	}
	_, err := f.svc.QRConsume(ctx, session.QRConsumeRequest{Ticket: tk.Ticket, PollToken: tk.PollToken})
	wantCode(t, err, api.CodeTokenRevoked)
	if _, err := f.buckets.QR.Get(ctx, tk.Ticket); err == nil {
		t.Fatal("the ticket of a revoked user is still consumable")
	}
	// A login started after the revocation works.
	f.clock.Advance(time.Second)
	next := f.qrCreate(t)
	f.confirm(t, next.Ticket)
	if _, err := f.svc.QRConsume(ctx, session.QRConsumeRequest{Ticket: next.Ticket, PollToken: next.PollToken}); err != nil {
		t.Fatalf("login after the revocation: %v", err)
	}
}

// Every auth event is logged, and no log line holds a token, a ticket (it is
// WeChat's state) or a poll token.
func TestLogsHoldNoSecrets(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tk := f.qrCreate(t)
	f.confirm(t, tk.Ticket)
	res, err := f.svc.QRConsume(ctx, session.QRConsumeRequest{Ticket: tk.Ticket, PollToken: tk.PollToken})
	if err != nil {
		t.Fatal(err)
	}
	next, err := f.refresh(res.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.refresh(res.RefreshToken) // reuse
	wantCode(t, err, api.CodeRefreshTokenReused)
	c, _ := f.verifier.Verify(next.AccessToken)
	if _, err := f.svc.Revoke(ctx, session.RevokeRequest{JTI: c.ID, ExpiresAt: c.ExpiresAt.Unix(), UserID: alice.ID}); err != nil {
		t.Fatal(err)
	}
	logs := f.logs.String()
	for _, event := range []string{"qr ticket created", "qr ticket completed", "tokens issued", "tokens refreshed", "refresh token reuse detected", "revoked"} {
		if !strings.Contains(logs, event) {
			t.Errorf("no %q log line", event)
		}
	}
	secrets := map[string]string{
		"ticket": tk.Ticket, "poll token": tk.PollToken, "poll token hash": tokens.HashToken(tk.PollToken),
		"access token": res.AccessToken, "refresh token": res.RefreshToken, "refresh token hash": tokens.HashRefreshToken(res.RefreshToken),
		"refreshed refresh token": next.RefreshToken,
	}
	for name, v := range secrets {
		if strings.Contains(logs, v) {
			t.Errorf("logs hold the %s", name)
		}
	}
	// A token's signature part alone is enough to leak it.
	sig := res.AccessToken[strings.LastIndex(res.AccessToken, ".")+1:]
	if strings.Contains(logs, sig) {
		t.Error("logs hold an access token signature")
	}
}
