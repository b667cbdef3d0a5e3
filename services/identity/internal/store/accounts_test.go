package store_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/wxlogin/wxlogin/services/identity/internal/store"
	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/identity"
)

func TestLoginWechatNoCreate(t *testing.T) {
	s, db := newStore(t)
	ctx := context.Background()

	for _, tc := range []struct{ name, unionid string }{{"no unionid", ""}, {"unknown unionid", "u-nobody"}} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.LoginWechat(ctx, store.WechatLogin{Kind: api.KindMiniProgram, AppID: mpApp, OpenID: "o-" + tc.name,
				UnionID: tc.unionid, SessionKey: "k", NoCreate: true})
			if !errors.Is(err, store.ErrNotBound) {
				t.Fatalf("err = %v, want ErrNotBound", err)
			}
			for _, table := range []string{"users", "identities", "outbox"} {
				if n := count(t, db, `SELECT count(*) FROM `+table); n != 0 {
					t.Errorf("%s rows = %d, want none", table, n)
				}
			}
		})
	}

	// A person known by unionid is linked, and a known identity logs in.
	first, err := s.LoginWechat(ctx, store.WechatLogin{Kind: api.KindWeb, AppID: webApp, OpenID: "o-web-kim", UnionID: "u-kim"})
	if err != nil {
		t.Fatal(err)
	}
	in := store.WechatLogin{Kind: api.KindMiniProgram, AppID: mpApp, OpenID: "o-mp-kim", UnionID: "u-kim", SessionKey: "k",
		Profile: &identity.Profile{City: ptr("Xi'an")}, NoCreate: true}
	linked, err := s.LoginWechat(ctx, in)
	if err != nil || linked.User.ID != first.User.ID || linked.IsNewUser || linked.User.City != "Xi'an" {
		t.Fatalf("linked login = %+v, %v", linked, err)
	}
	again, err := s.LoginWechat(ctx, in)
	if err != nil || again.User.ID != first.User.ID || again.IdentityID != linked.IdentityID {
		t.Fatalf("returning login = %+v, %v", again, err)
	}
	events := loginEvents(t, db, first, linked, again)
	var kinds []string
	for _, e := range events {
		if e.Type == identity.EventUserLoggedIn {
			kinds = append(kinds, e.Kind)
		}
	}
	if want := []string{api.KindWeb, api.KindMiniProgram, api.KindMiniProgram}; len(kinds) != 3 || kinds[0] != want[0] || kinds[1] != want[1] || kinds[2] != want[2] {
		t.Errorf("logged_in kinds = %v, want %v", kinds, want)
	}

	// A disabled user is refused, linked or not.
	if _, err := db.Exec(`UPDATE users SET disabled_at = now()`); err != nil {
		t.Fatal(err)
	}
	for _, in := range []store.WechatLogin{in, {Kind: api.KindMiniProgram, AppID: "wx-other", OpenID: "o-3", UnionID: "u-kim", NoCreate: true}} {
		if _, err := s.LoginWechat(ctx, in); !errors.Is(err, store.ErrUserDisabled) {
			t.Errorf("login of a disabled user (%s) = %v, want ErrUserDisabled", in.OpenID, err)
		}
	}
}

func TestCreateAccount(t *testing.T) {
	s, db := newStore(t)
	ctx := context.Background()
	wx := &store.WechatLogin{Kind: api.KindMiniProgram, AppID: mpApp, OpenID: "o-lee", UnionID: "u-lee", SessionKey: "k",
		Profile: &identity.Profile{Nickname: ptr("Lee"), Gender: ptr(1)}}

	// A refusal at the last step leaves nothing behind.
	refuse := errors.New("token spent meanwhile")
	_, err := s.CreateAccount(ctx, store.NewAccount{Username: "lee", PasswordHash: "h", Identity: wx,
		BeforeCommit: func(context.Context) error { return refuse }})
	if !errors.Is(err, refuse) {
		t.Fatalf("err = %v", err)
	}
	if n := count(t, db, `SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM identities) + (SELECT count(*) FROM outbox)`); n != 0 {
		t.Fatalf("%d rows left after a rollback", n)
	}

	u, err := s.CreateAccount(ctx, store.NewAccount{Username: "lee", PasswordHash: "h", Identity: wx})
	if err != nil || u.Nickname != "Lee" || u.Gender != 1 || u.UnionID != "u-lee" {
		t.Fatalf("account = %+v, %v", u, err)
	}
	var types []string
	for _, e := range outboxEvents(t, db) {
		types = append(types, e.Type)
		if e.Type != identity.EventUserLoggedIn && (e.Identity == nil || e.Identity.OpenID != "o-lee") {
			t.Errorf("%s event without the identity: %+v", e.Type, e)
		}
	}
	if want := []string{identity.EventUserCreated, identity.EventUserBound, identity.EventUserLoggedIn}; len(types) != 3 ||
		types[0] != want[0] || types[1] != want[1] || types[2] != want[2] {
		t.Errorf("events = %v, want %v", types, want)
	}
	if res, err := s.LoginWechat(ctx, *wx); err != nil || res.User.ID != u.ID {
		t.Errorf("WeChat login = %+v, %v; want the account", res, err)
	}

	for _, tc := range []struct {
		name string
		in   store.NewAccount
		want error
	}{
		{"username taken", store.NewAccount{Username: "lee", PasswordHash: "h"}, store.ErrUsernameTaken},
		{"identity taken", store.NewAccount{Username: "lee2", PasswordHash: "h", Identity: &store.WechatLogin{Kind: api.KindMiniProgram, AppID: mpApp, OpenID: "o-lee"}}, store.ErrIdentityBound},
		{"unionid taken", store.NewAccount{Username: "lee3", PasswordHash: "h", Identity: &store.WechatLogin{Kind: api.KindWeb, AppID: webApp, OpenID: "o-w", UnionID: "u-lee"}}, store.ErrIdentityBound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.CreateAccount(ctx, tc.in); !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
	if n := count(t, db, `SELECT count(*) FROM users`); n != 1 {
		t.Errorf("users = %d, want 1", n)
	}
}

// Two concurrent unbinds of a password-less user's two identities: one
// wins, the other would leave no way to log in.
func TestDeleteIdentityConcurrent(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	a, err := s.LoginWechat(ctx, store.WechatLogin{Kind: api.KindMiniProgram, AppID: mpApp, OpenID: "o-a", UnionID: "u-mo", SessionKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.LoginWechat(ctx, store.WechatLogin{Kind: api.KindWeb, AppID: webApp, OpenID: "o-b", UnionID: "u-mo"})
	if err != nil || b.User.ID != a.User.ID {
		t.Fatalf("second identity = %+v, %v", b, err)
	}
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, id := range []string{a.IdentityID, b.IdentityID} {
		wg.Go(func() { errs[i] = s.DeleteIdentity(ctx, a.User.ID, id) })
	}
	wg.Wait()
	ok, last := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, store.ErrLastLoginMethod):
			last++
		default:
			t.Errorf("DeleteIdentity: %v", err)
		}
	}
	if ok != 1 || last != 1 {
		t.Errorf("%d deleted, %d refused; want 1 and 1", ok, last)
	}
	u, err := s.GetUser(ctx, a.User.ID)
	if err != nil || len(u.Identities) != 1 || u.UnionID != "u-mo" {
		t.Errorf("user = %+v, %v; want one identity, unionid kept", u, err)
	}
}

func TestBindIdentity(t *testing.T) {
	s, db := newStore(t)
	ctx := context.Background()
	owner, err := s.CreateAccount(ctx, store.NewAccount{Username: "nina", PasswordHash: "h"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE users SET city = 'Kept' WHERE id = $1`, owner.ID); err != nil {
		t.Fatal(err)
	}
	in := store.WechatLogin{Kind: api.KindMiniProgram, AppID: mpApp, OpenID: "o-nina", UnionID: "u-nina", SessionKey: "k1",
		Profile: &identity.Profile{Nickname: ptr("Nina"), City: ptr("Overwritten?")}}
	res, err := s.BindIdentity(ctx, owner.ID, in, nil)
	if err != nil || !res.Bound || res.User.Nickname != "Nina" || res.User.City != "Kept" || res.User.UnionID != "u-nina" {
		t.Fatalf("bind = %+v, %v", res, err)
	}
	in.SessionKey = "k2"
	again, err := s.BindIdentity(ctx, owner.ID, in, nil)
	if err != nil || again.Bound || again.IdentityID != res.IdentityID {
		t.Fatalf("bind again = %+v, %v", again, err)
	}
	var key string
	if err := db.Get(&key, `SELECT session_key FROM identities WHERE id = $1`, res.IdentityID); err != nil || key != "k2" {
		t.Errorf("session_key = %q, %v; want the fresh one", key, err)
	}

	other, err := s.CreateAccount(ctx, store.NewAccount{Username: "omar", PasswordHash: "h"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		user string
		in   store.WechatLogin
		want error
	}{
		{"identity of another user", other.ID, in, store.ErrIdentityBound},
		{"unionid of another user", other.ID, store.WechatLogin{Kind: api.KindWeb, AppID: webApp, OpenID: "o-x", UnionID: "u-nina"}, store.ErrIdentityBound},
		{"unknown user", "5b1b2a57-1a43-4c0c-9df7-4ab0d1f0b0a1", store.WechatLogin{Kind: api.KindWeb, AppID: webApp, OpenID: "o-y"}, store.ErrNotFound},
		{"malformed user", "x", store.WechatLogin{Kind: api.KindWeb, AppID: webApp, OpenID: "o-y"}, store.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.BindIdentity(ctx, tc.user, tc.in, nil); !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
	if n := count(t, db, `SELECT count(*) FROM identities WHERE user_id = $1`, other.ID); n != 0 {
		t.Errorf("refused binds left %d identities", n)
	}
}
