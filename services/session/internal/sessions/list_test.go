package sessions

import (
	"context"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/services/session/internal/tokens"
	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/session"
)

// TestList: a user's live sessions, newest first, with kind, client and the
// time of the last refresh; revoked (one by one or all together) and
// expired ones are left out, and other users' never show.
func TestList(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	const alice, bob = "8d4c2b1a-0f9e-4d7c-8b6a-5e4d3c2b1a09", "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
	list := func(user string) []session.Info {
		t.Helper()
		l, err := f.svc.List(ctx, session.ListRequest{UserID: user})
		if err != nil {
			t.Fatal(err)
		}
		return l.Items
	}
	sid := func(tok session.Tokens) string {
		t.Helper()
		rt, err := tokens.ParseRefreshToken(tok.RefreshToken)
		if err != nil {
			t.Fatal(err)
		}
		return rt.FamilyID
	}
	if got := list(alice); len(got) != 0 {
		t.Fatalf("no sessions yet: %v", got)
	}
	older := f.issueFor(t, alice)
	created := f.clock.Now().UTC()
	f.clock.Advance(time.Minute)
	pw, err := f.svc.Issue(ctx, session.IssueRequest{UserID: alice, Kind: api.KindPassword})
	if err != nil {
		t.Fatal(err)
	}
	f.issueFor(t, bob)
	f.clock.Advance(time.Minute)
	refreshed, err := f.refresh(older.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	got := list(alice)
	if len(got) != 2 || got[0].ID != sid(pw) || got[1].ID != sid(older) {
		t.Fatalf("alice's sessions %+v, want the password one, then the older", got)
	}
	if got[0].Kind != api.KindPassword || got[0].ClientID != tokens.DefaultClientID || !got[0].LastUsedAt.Equal(got[0].CreatedAt) {
		t.Errorf("password session %+v", got[0])
	}
	if got[1].Kind != api.KindMiniProgram || got[1].ClientID != "wx1111111111111111" || !got[1].CreatedAt.Equal(created) ||
		!got[1].LastUsedAt.Equal(f.clock.Now().UTC()) || !got[1].ExpiresAt.Equal(created.Add(refreshTTL)) {
		t.Errorf("refreshed session %+v: want last used now (%s)", got[1], f.clock.Now().UTC())
	}

	if _, err := f.svc.Revoke(ctx, session.RevokeRequest{SessionID: sid(refreshed), Subject: alice}); err != nil {
		t.Fatal(err)
	}
	if got := list(alice); len(got) != 1 || got[0].ID != sid(pw) {
		t.Fatalf("after revoking one: %+v", got)
	}
	f.clock.Advance(refreshTTL)
	if got := list(alice); len(got) != 0 {
		t.Fatalf("expired sessions listed: %+v", got)
	}
	if got := list(bob); len(got) != 0 {
		t.Fatalf("bob's expired session listed: %+v", got)
	}
	f.issueFor(t, bob)
	if _, err := f.svc.Revoke(ctx, session.RevokeRequest{UserID: bob}); err != nil {
		t.Fatal(err)
	}
	if got := list(bob); len(got) != 0 {
		t.Fatalf("sessions of a revoked user listed: %+v", got)
	}
	if _, err := f.svc.List(ctx, session.ListRequest{UserID: "a.b"}); api.CodeOf(err) != api.CodeInvalidRequest {
		t.Fatalf("malformed user id: %v", err)
	}
}
