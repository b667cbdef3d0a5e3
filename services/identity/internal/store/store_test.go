package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/wxlogin/wxlogin/services/identity/internal/store"
	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/identity"
	"github.com/wxlogin/wxlogin/shared/pgtest"
)

const (
	mpApp  = "wx1111111111111111"
	webApp = "wx2222222222222222"
)

func migrate(dsn string) error {
	db, err := sqlx.Open("postgres", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	return store.Migrate(context.Background(), db.DB, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func newStore(t testing.TB) (*store.Store, *sqlx.DB) {
	t.Helper()
	db, err := sqlx.Open("postgres", pgtest.NewDatabase(t, migrate))
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(20)
	t.Cleanup(func() { db.Close() })
	s, err := store.New(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, db
}

func ptr[T any](v T) *T { return &v }

func count(t testing.TB, db *sqlx.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.Get(&n, query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func TestMigrateIsIdempotent(t *testing.T) {
	dsn := pgtest.NewDatabase(t, migrate)
	for i := range 2 {
		if err := migrate(dsn); err != nil {
			t.Fatalf("migrate again (%d): %v", i, err)
		}
	}
}

func TestLoginWechatNewThenReturning(t *testing.T) {
	s, db := newStore(t)
	ctx := context.Background()

	first, err := s.LoginWechat(ctx, store.WechatLogin{
		Kind: api.KindMiniProgram, AppID: mpApp, OpenID: "o-alice", SessionKey: "sk-1",
		Profile: &identity.Profile{Nickname: ptr("Alice"), AvatarURL: ptr("https://img/a.png"), Gender: ptr(2), City: ptr("Shenzhen")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !first.IsNewUser {
		t.Error("first login: IsNewUser = false")
	}
	u := first.User
	if want := store.GeneratedUsername(mpApp, "o-alice", 12); u.Username != want || len(want) != 15 {
		t.Errorf("username = %q, want %q", u.Username, want)
	}
	if u.Nickname != "Alice" || u.AvatarURL != "https://img/a.png" || u.Gender != 2 || u.City != "Shenzhen" || u.LastLoginAt == nil {
		t.Errorf("first login user = %+v", u)
	}

	// Only the fields sent change; the rest stay.
	second, err := s.LoginWechat(ctx, store.WechatLogin{
		Kind: api.KindMiniProgram, AppID: mpApp, OpenID: "o-alice", SessionKey: "sk-2",
		Profile: &identity.Profile{Nickname: ptr("Alice Z"), Country: ptr("CN")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if second.IsNewUser || second.User.ID != u.ID || second.IdentityID != first.IdentityID {
		t.Errorf("second login = %+v, want the same user and identity, not new", second)
	}
	got := second.User
	if got.Nickname != "Alice Z" || got.Country != "CN" || got.AvatarURL != "https://img/a.png" || got.Gender != 2 || got.City != "Shenzhen" {
		t.Errorf("second login profile = %+v", got)
	}
	if !got.LastLoginAt.After(*u.LastLoginAt) {
		t.Errorf("last_login_at not advanced: %v then %v", u.LastLoginAt, got.LastLoginAt)
	}

	// No profile at all: a login with nothing to update.
	third, err := s.LoginWechat(ctx, store.WechatLogin{Kind: api.KindMiniProgram, AppID: mpApp, OpenID: "o-alice", SessionKey: "sk-3"})
	if err != nil {
		t.Fatal(err)
	}
	if third.User.Nickname != "Alice Z" || third.User.UpdatedAt != got.UpdatedAt {
		t.Errorf("login without profile changed the user: %+v", third.User)
	}

	var key string
	if err := db.Get(&key, `SELECT session_key FROM identities WHERE appid = $1 AND openid = $2`, mpApp, "o-alice"); err != nil || key != "sk-3" {
		t.Errorf("session_key = %q, %v; want the latest", key, err)
	}
	if n := count(t, db, `SELECT count(*) FROM users`); n != 1 {
		t.Errorf("users = %d, want 1", n)
	}

	// Events: created once, logged_in per login, never the session_key. The
	// first login's go through the outbox; a returning login's logged_in is
	// handed back to publish after the commit.
	events := outboxEvents(t, db)
	if len(events) != 2 || first.Outbox != true || len(first.Publish) != 0 {
		t.Errorf("first login: %d outbox events (Outbox %v), %d to publish; want 2, true, 0", len(events), first.Outbox, len(first.Publish))
	}
	for _, res := range []store.LoginResult{second, third} {
		if res.Outbox || len(res.Publish) != 1 {
			t.Fatalf("returning login: Outbox %v, %d to publish; want false, 1", res.Outbox, len(res.Publish))
		}
		events = append(events, eventOf(t, res.Publish[0].ID, res.Publish[0].Subject, res.Publish[0].Payload))
		if strings.Contains(string(res.Publish[0].Payload), "sk-") {
			t.Errorf("published payload holds a session_key: %s", res.Publish[0].Payload)
		}
	}
	var types []string
	for _, e := range events {
		types = append(types, e.Type)
		if e.User.ID != u.ID || e.Identity == nil || e.Identity.OpenID != "o-alice" || e.Identity.AppID != mpApp || e.Identity.Kind != api.KindMiniProgram {
			t.Errorf("event %+v: wrong user or identity", e)
		}
	}
	want := []string{identity.EventUserCreated, identity.EventUserLoggedIn, identity.EventUserLoggedIn, identity.EventUserLoggedIn}
	if !slices.Equal(types, want) {
		t.Errorf("event types = %v, want %v", types, want)
	}
	if n := count(t, db, `SELECT count(*) FROM outbox WHERE payload::text LIKE '%sk-%'`); n != 0 {
		t.Errorf("%d outbox payloads hold a session_key", n)
	}
	if events[0].User.Nickname != "Alice" || events[1].User.Nickname != "Alice" || events[2].User.Nickname != "Alice Z" {
		t.Errorf("events do not carry the user as of each login: %q %q %q", events[0].User.Nickname, events[1].User.Nickname, events[2].User.Nickname)
	}
}

// The event body's user must stay api.User (without identities), which the
// SQL function wxlogin_user_event builds by hand: same keys, same values.
func TestEventUserMatchesAPIUser(t *testing.T) {
	s, db := newStore(t)
	ctx := context.Background()
	res, err := s.LoginWechat(ctx, store.WechatLogin{Kind: api.KindMiniProgram, AppID: mpApp, OpenID: "o-shape", UnionID: "u-shape", SessionKey: "k",
		Profile: &identity.Profile{Nickname: ptr("N"), AvatarURL: ptr("A"), Gender: ptr(1), Language: ptr("L"), City: ptr("C"), Province: ptr("P"), Country: ptr("X")}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		update string
	}{
		{"empty optional fields", `SELECT 1`},
		{"every field set", `UPDATE users SET phone_number = '13800138000', email = 'a@b.c', date_of_birth = '1990-02-03',
			description = 'hi', is_admin = true, disabled_at = now()`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := db.Exec(tc.update); err != nil {
				t.Fatal(err)
			}
			var raw []byte
			if err := db.Get(&raw, `SELECT wxlogin_user_event(gen_random_uuid(), 'test', u, i)
				FROM users AS u JOIN identities AS i ON i.user_id = u.id`); err != nil {
				t.Fatal(err)
			}
			var body struct {
				User     json.RawMessage `json:"user"`
				Identity map[string]any  `json:"identity"`
			}
			if err := json.Unmarshal(raw, &body); err != nil {
				t.Fatal(err)
			}
			stored, err := s.GetUser(ctx, res.User.ID)
			if err != nil {
				t.Fatal(err)
			}
			want := stored.Public()
			// Events carry the identity on its own and no login time (an
			// event says when it happened in occurred_at).
			want.Identities, want.LastLoginAt = nil, nil
			wantJSON, _ := json.Marshal(want)
			if got, want := jsonKeys(t, body.User), jsonKeys(t, wantJSON); !slices.Equal(got, want) {
				t.Errorf("event user keys = %v\napi.User keys   = %v", got, want)
			}
			var got api.User
			if err := json.Unmarshal(body.User, &got); err != nil {
				t.Fatal(err)
			}
			if !got.CreatedAt.Equal(want.CreatedAt) || (got.DisabledAt == nil) != (want.DisabledAt == nil) ||
				got.DisabledAt != nil && !got.DisabledAt.Equal(*want.DisabledAt) {
				t.Errorf("times: event %v/%v, user %v/%v", got.CreatedAt, got.DisabledAt, want.CreatedAt, want.DisabledAt)
			}
			got.CreatedAt, want.CreatedAt, got.DisabledAt, want.DisabledAt = time.Time{}, time.Time{}, nil, nil
			if !reflect.DeepEqual(got, want) {
				t.Errorf("event user = %+v\nwant         %+v", got, want)
			}
			if keys, want := slices.Sorted(maps.Keys(body.Identity)), []string{"appid", "id", "kind", "openid", "unionid"}; !slices.Equal(keys, want) {
				t.Errorf("event identity keys = %v, want %v", keys, want)
			}
		})
	}
}

func jsonKeys(t *testing.T, b []byte) []string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return slices.Sorted(maps.Keys(m))
}

func outboxEvents(t *testing.T, db *sqlx.DB) []identity.Event {
	t.Helper()
	var rows []struct {
		ID      string `db:"id"`
		Subject string `db:"subject"`
		Payload []byte `db:"payload"`
	}
	if err := db.Select(&rows, `SELECT id, subject, payload FROM outbox ORDER BY created_at, seq`); err != nil {
		t.Fatal(err)
	}
	var out []identity.Event
	for _, r := range rows {
		out = append(out, eventOf(t, r.ID, r.Subject, r.Payload))
	}
	return out
}

// loginEvents are the events of logins: the outbox's, then those the
// results hand back to publish, in order.
func loginEvents(t *testing.T, db *sqlx.DB, results ...store.LoginResult) []identity.Event {
	t.Helper()
	events := outboxEvents(t, db)
	for _, res := range results {
		for _, ev := range res.Publish {
			events = append(events, eventOf(t, ev.ID, ev.Subject, ev.Payload))
		}
	}
	return events
}

// eventOf decodes an event body and checks it against its id and subject.
func eventOf(t *testing.T, id, subject string, payload []byte) identity.Event {
	t.Helper()
	var e identity.Event
	if err := json.Unmarshal(payload, &e); err != nil {
		t.Fatalf("payload %s: %v", payload, err)
	}
	if e.ID != id || subject != "wxlogin.events."+e.Type {
		t.Errorf("event %s on %s holds event %s of type %s", id, subject, e.ID, e.Type)
	}
	return e
}

func TestLoginWechatConcurrentFirstLogins(t *testing.T) {
	for _, unionid := range []string{"", "u-concurrent"} {
		t.Run(fmt.Sprintf("unionid=%q", unionid), func(t *testing.T) {
			s, db := newStore(t)
			const n = 50
			results := make([]store.LoginResult, n)
			errs := make([]error, n)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range n {
				wg.Go(func() {
					<-start
					results[i], errs[i] = s.LoginWechat(context.Background(), store.WechatLogin{
						Kind: api.KindMiniProgram, AppID: mpApp, OpenID: "o-racer", UnionID: unionid,
						SessionKey: fmt.Sprintf("sk-%d", i), Profile: &identity.Profile{Nickname: ptr(fmt.Sprint("racer ", i))},
					})
				})
			}
			close(start)
			wg.Wait()
			newUsers := 0
			for i := range n {
				if errs[i] != nil {
					t.Fatalf("login %d: %v", i, errs[i])
				}
				if results[i].User.ID != results[0].User.ID {
					t.Errorf("login %d got user %s, login 0 got %s", i, results[i].User.ID, results[0].User.ID)
				}
				if results[i].IsNewUser {
					newUsers++
				}
			}
			if newUsers != 1 {
				t.Errorf("%d logins saw is_new_user, want exactly 1", newUsers)
			}
			if c := count(t, db, `SELECT count(*) FROM users`); c != 1 {
				t.Errorf("users = %d, want 1", c)
			}
			if c := count(t, db, `SELECT count(*) FROM identities`); c != 1 {
				t.Errorf("identities = %d, want 1", c)
			}
			if c := count(t, db, `SELECT count(*) FROM outbox WHERE subject = $1`, identity.SubjectUserCreated); c != 1 {
				t.Errorf("user.created events = %d, want 1", c)
			}
			loggedIn := 0
			for _, e := range loginEvents(t, db, results...) {
				if e.Type == identity.EventUserLoggedIn {
					loggedIn++
				}
			}
			if loggedIn != n {
				t.Errorf("user.logged_in events = %d, want %d", loggedIn, n)
			}
		})
	}
}

func TestLoginWechatUnionIDLinksApps(t *testing.T) {
	s, db := newStore(t)
	ctx := context.Background()
	mp, err := s.LoginWechat(ctx, store.WechatLogin{Kind: api.KindMiniProgram, AppID: mpApp, OpenID: "o-mp-bob", UnionID: "u-bob", SessionKey: "k1"})
	if err != nil {
		t.Fatal(err)
	}
	if mp.User.UnionID != "u-bob" {
		t.Errorf("user unionid = %q, want u-bob", mp.User.UnionID)
	}
	web, err := s.LoginWechat(ctx, store.WechatLogin{Kind: api.KindWeb, AppID: webApp, OpenID: "o-web-bob", UnionID: "u-bob",
		Profile: &identity.Profile{Nickname: ptr("Bob")}})
	if err != nil {
		t.Fatal(err)
	}
	if web.User.ID != mp.User.ID || web.IsNewUser || web.IdentityID == mp.IdentityID {
		t.Errorf("web login = %+v; want the mini-program user, a new identity, not a new user", web)
	}
	if web.User.Nickname != "Bob" {
		t.Errorf("nickname = %q, want Bob", web.User.Nickname)
	}
	u, err := s.GetUser(ctx, mp.User.ID)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, i := range u.Identities {
		kinds = append(kinds, i.Kind+"/"+i.AppID)
		if i.Provider != "wechat" || i.ID == "" || i.CreatedAt.IsZero() {
			t.Errorf("identity %+v", i)
		}
	}
	if want := []string{"miniprogram/" + mpApp, "web/" + webApp}; !slices.Equal(kinds, want) {
		t.Errorf("identities = %v, want %v", kinds, want)
	}
	if c := count(t, db, `SELECT count(*) FROM outbox WHERE subject = $1`, identity.SubjectUserCreated); c != 1 {
		t.Errorf("user.created events = %d, want 1", c)
	}
}

func TestLoginWechatFirstUnionIDIsRecorded(t *testing.T) {
	s, db := newStore(t)
	ctx := context.Background()
	// Carol logs in before the mini-program is bound to an Open Platform account...
	first, err := s.LoginWechat(ctx, store.WechatLogin{Kind: api.KindMiniProgram, AppID: mpApp, OpenID: "o-carol", SessionKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	// ...then WeChat starts reporting her unionid: the user and identity record it,
	if _, err := s.LoginWechat(ctx, store.WechatLogin{Kind: api.KindMiniProgram, AppID: mpApp, OpenID: "o-carol", UnionID: "u-carol", SessionKey: "k"}); err != nil {
		t.Fatal(err)
	}
	if c := count(t, db, `SELECT count(*) FROM users WHERE unionid = 'u-carol'`); c != 1 {
		t.Errorf("users with the unionid = %d, want 1", c)
	}
	// ...so her website login finds her.
	web, err := s.LoginWechat(ctx, store.WechatLogin{Kind: api.KindWeb, AppID: webApp, OpenID: "o-web-carol", UnionID: "u-carol"})
	if err != nil {
		t.Fatal(err)
	}
	if web.User.ID != first.User.ID || web.IsNewUser {
		t.Errorf("web login user = %s (new %v), want %s", web.User.ID, web.IsNewUser, first.User.ID)
	}
}

func TestLoginWechatDisabledUser(t *testing.T) {
	for _, unionid := range []string{"", "u-dave"} {
		t.Run(fmt.Sprintf("unionid=%q", unionid), func(t *testing.T) {
			s, db := newStore(t)
			ctx := context.Background()
			in := store.WechatLogin{Kind: api.KindMiniProgram, AppID: mpApp, OpenID: "o-dave", UnionID: unionid, SessionKey: "k"}
			res, err := s.LoginWechat(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec(`UPDATE users SET disabled_at = now() WHERE id = $1`, res.User.ID); err != nil {
				t.Fatal(err)
			}
			before := count(t, db, `SELECT count(*) FROM outbox`)
			if _, err := s.LoginWechat(ctx, in); !errors.Is(err, store.ErrUserDisabled) {
				t.Errorf("returning disabled user: err = %v, want ErrUserDisabled", err)
			}
			// A new app of the same person (same unionid) is refused too; without a
			// unionid it is a different person and gets an account.
			other := store.WechatLogin{Kind: api.KindWeb, AppID: webApp, OpenID: "o-web-dave", UnionID: unionid}
			_, err = s.LoginWechat(ctx, other)
			if unionid != "" && !errors.Is(err, store.ErrUserDisabled) {
				t.Errorf("disabled user on a new app: err = %v, want ErrUserDisabled", err)
			}
			if unionid == "" && err != nil {
				t.Errorf("unrelated user: %v", err)
			}
			wantEvents := before
			if unionid == "" {
				wantEvents += 2
			}
			if n := count(t, db, `SELECT count(*) FROM outbox`); n != wantEvents {
				t.Errorf("outbox rows = %d, want %d (no events for refused logins)", n, wantEvents)
			}
		})
	}
}

func TestLoginWechatNeverTakesOverAPasswordAccount(t *testing.T) {
	s, db := newStore(t)
	taken := store.GeneratedUsername(mpApp, "o-erin", 12)
	if _, err := db.Exec(`INSERT INTO users (username, password_hash) VALUES ($1, 'x')`, taken); err != nil {
		t.Fatal(err)
	}
	res, err := s.LoginWechat(context.Background(), store.WechatLogin{Kind: api.KindMiniProgram, AppID: mpApp, OpenID: "o-erin", SessionKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	if want := store.GeneratedUsername(mpApp, "o-erin", 20); res.User.Username != want || !res.IsNewUser {
		t.Errorf("login = %+v, want a new user %s", res, want)
	}
	// Same with a unionid, where the clash is a unique violation.
	taken = store.GeneratedUsername(mpApp, "o-frank", 12)
	if _, err := db.Exec(`INSERT INTO users (username, password_hash) VALUES ($1, 'x')`, taken); err != nil {
		t.Fatal(err)
	}
	res, err = s.LoginWechat(context.Background(), store.WechatLogin{Kind: api.KindMiniProgram, AppID: mpApp, OpenID: "o-frank", UnionID: "u-frank", SessionKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(res.User.Username, "wx_") || res.User.Username == taken || !res.IsNewUser {
		t.Errorf("login = %+v, want a new user other than %s", res, taken)
	}
}

func TestGetUser(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	res, err := s.LoginWechat(ctx, store.WechatLogin{Kind: api.KindMiniProgram, AppID: mpApp, OpenID: "o-gina", SessionKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, id string
		err      error
	}{
		{"existing", res.User.ID, nil},
		{"unknown", "5b1b2a57-1a43-4c0c-9df7-4ab0d1f0b0a1", store.ErrNotFound},
		{"malformed", "not-a-uuid", store.ErrNotFound},
		{"empty", "", store.ErrNotFound},
		// Other spellings of a UUID: Postgres would refuse (urn) or find
		// the user under an id that is not the one asked for.
		{"urn", "urn:uuid:" + res.User.ID, store.ErrNotFound},
		{"upper case", strings.ToUpper(res.User.ID), store.ErrNotFound},
		{"braces", "{" + res.User.ID + "}", store.ErrNotFound},
		{"no hyphens", strings.ReplaceAll(res.User.ID, "-", ""), store.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := s.GetUser(ctx, tc.id)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if tc.err == nil && (u.ID != tc.id || len(u.Identities) != 1 || u.Identities[0].ID != res.IdentityID) {
				t.Errorf("user = %+v", u)
			}
		})
	}
}

func TestSetAdmin(t *testing.T) {
	s, db := newStore(t)
	ctx := context.Background()
	res, err := s.LoginWechat(ctx, store.WechatLogin{Kind: api.KindMiniProgram, AppID: mpApp, OpenID: "o-hal", SessionKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		username string
		admin    bool
		err      error
	}{
		{"grant", res.User.Username, true, nil},
		{"revoke", res.User.Username, false, nil},
		{"unknown", "nobody", true, store.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.SetAdmin(ctx, tc.username, tc.admin); !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if tc.err != nil {
				return
			}
			var admin bool
			if err := db.Get(&admin, `SELECT is_admin FROM users WHERE username = $1`, tc.username); err != nil || admin != tc.admin {
				t.Errorf("is_admin = %v, %v; want %v", admin, err, tc.admin)
			}
		})
	}
}

// A returning login writes its identities row only; the users row only when
// a sent profile field differs from the stored one (xmin is the transaction
// that wrote a row's current version).
func TestReturningLoginWritesUsersOnlyOnChange(t *testing.T) {
	s, db := newStore(t)
	ctx := context.Background()
	in := store.WechatLogin{Kind: api.KindMiniProgram, AppID: mpApp, OpenID: "o-quiet", SessionKey: "k1", Profile: &identity.Profile{Nickname: ptr("Quiet")}}
	if _, err := s.LoginWechat(ctx, in); err != nil {
		t.Fatal(err)
	}
	xmins := func() (users, idents string) {
		t.Helper()
		if err := db.QueryRow(`SELECT (SELECT xmin::text FROM users), (SELECT xmin::text FROM identities)`).Scan(&users, &idents); err != nil {
			t.Fatal(err)
		}
		return users, idents
	}
	u0, i0 := xmins()
	in.SessionKey = "k2" // the same nickname again
	res, err := s.LoginWechat(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	u1, i1 := xmins()
	if u1 != u0 || i1 == i0 {
		t.Errorf("unchanged profile: users xmin %s -> %s (want kept), identities %s -> %s (want new)", u0, u1, i0, i1)
	}
	if res.User.Nickname != "Quiet" || res.User.LastLoginAt == nil {
		t.Errorf("returning login user = %+v", res.User)
	}
	in.Profile = &identity.Profile{Nickname: ptr("Loud")}
	if res, err = s.LoginWechat(ctx, in); err != nil || res.User.Nickname != "Loud" {
		t.Fatalf("changed profile: %+v, %v", res.User, err)
	}
	if u2, _ := xmins(); u2 == u1 {
		t.Error("changed profile: users row not written")
	}
}

// TestPublicHidesWeChatIDs: a user's own answers carry no openid or
// unionid; admin answers do.
func TestPublicHidesWeChatIDs(t *testing.T) {
	u := store.User{Identities: []api.Identity{{ID: "i1", Kind: api.KindMiniProgram, AppID: "wxa", OpenID: "o-1", UnionID: "u-1"}}}
	if got := u.Public().Identities; len(got) != 1 || got[0].OpenID != "" || got[0].UnionID != "" || got[0].AppID != "wxa" {
		t.Errorf("Public identities %+v, want the appid without openid/unionid", got)
	}
	if got := u.ForAdmin().Identities; len(got) != 1 || got[0].OpenID != "o-1" || got[0].UnionID != "u-1" {
		t.Errorf("ForAdmin identities %+v, want openid and unionid", got)
	}
	if u.Identities[0].OpenID != "o-1" {
		t.Error("Public changed the stored identities")
	}
}
