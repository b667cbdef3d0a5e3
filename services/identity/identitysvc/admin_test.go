package identitysvc_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/wxlogin/wxlogin/services/identity/identitysvc"
	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/identity"
	"github.com/wxlogin/wxlogin/shared/poll"
	"github.com/wxlogin/wxlogin/shared/wechat/fakewechat"
)

func TestAdmin(t *testing.T) {
	s := start(t, nil)
	// One deadline for many calls, password hashes and waits for the relay
	// (s.events) among them: room for a loaded machine under -race.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin := s.register(t, "root", "root's password").User
	s.makeAdmin(t, admin.ID)
	plain := s.register(t, "ivan", "ivan's password").User

	// A few users to find: WeChat ones with nicknames, one with a phone.
	_, wxJane := s.mpCode(t, fakewechat.User{UnionID: "union-jane"})
	jane := s.mpLogin(t, fakewechat.User{OpenID: wxJane.OpenID}, &identity.Profile{Nickname: ptr("Jane 100%_done")}).User
	phoneCode, err := s.fake.MintPhoneCode(fakewechat.DevMiniProgramAppID, "13700137000")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.client.SetPhone(ctx, identity.UserPhoneRequest{UserID: jane.ID, Code: phoneCode}); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		s.mpLogin(t, fakewechat.User{}, &identity.Profile{Nickname: ptr(fmt.Sprintf("page user %d", i))})
	}

	search := func(q string, page, size int) identity.AdminSearchResult {
		t.Helper()
		res, err := s.client.AdminSearch(ctx, identity.AdminSearchRequest{ActorID: admin.ID, Q: q, Page: page, PageSize: size})
		if err != nil {
			t.Fatalf("search %q: %v", q, err)
		}
		return res
	}
	for _, tc := range []struct {
		name, q string
		want    []string // user ids
	}{
		{"openid, exactly", wxJane.OpenID, []string{jane.ID}},
		{"a piece of the openid", wxJane.OpenID[3:13], []string{jane.ID}},
		{"unionid", "union-jane", []string{jane.ID}},
		{"phone part", "0137000", []string{jane.ID}},
		{"nickname, any case", "JANE", []string{jane.ID}},
		{"% and _ are literal", "100%_d", []string{jane.ID}},
		{"% alone matches no wildcard", "%", []string{jane.ID}},
		{"username", "IVAN", []string{plain.ID}},
		{"nothing", "no such user", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := search(tc.q, 1, 20)
			var got []string
			for _, u := range res.Items {
				got = append(got, u.ID)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) || res.Total != len(tc.want) {
				t.Errorf("items %v (total %d), want %v", got, res.Total, tc.want)
			}
		})
	}

	// "_" is literal too: it matches the 6 WeChat users (their generated
	// usernames start with "wx_"), not the 2 password accounts.
	if res := search("_", 1, 100); res.Total != 6 {
		t.Errorf("search \"_\": total %d, want 6", res.Total)
	}

	t.Run("paging", func(t *testing.T) {
		all := search("", 0, 0) // defaults: page 1, 20 per page
		if all.Total != 8 || len(all.Items) != 8 {
			t.Fatalf("all = %d items, total %d; want 8", len(all.Items), all.Total)
		}
		for i := 1; i < len(all.Items); i++ {
			if all.Items[i].CreatedAt.After(all.Items[i-1].CreatedAt) {
				t.Errorf("not newest first at %d", i)
			}
		}
		var paged []string
		for page := 1; page <= 3; page++ {
			res := search("", page, 3)
			if res.Total != 8 {
				t.Errorf("page %d total = %d", page, res.Total)
			}
			for _, u := range res.Items {
				paged = append(paged, u.ID)
			}
		}
		var want []string
		for _, u := range all.Items {
			want = append(want, u.ID)
		}
		if fmt.Sprint(paged) != fmt.Sprint(want) {
			t.Errorf("pages of 3 = %v\nall         = %v", paged, want)
		}
		if res := search("", 9, 3); len(res.Items) != 0 || res.Total != 8 || res.Items == nil {
			t.Errorf("past the end = %+v", res)
		}
		for _, bad := range []identity.AdminSearchRequest{{Page: -1}, {PageSize: 101}, {PageSize: -5}, {Q: strings.Repeat("q", 257)}} {
			bad.ActorID = admin.ID
			_, err := s.client.AdminSearch(ctx, bad)
			wantCode(t, err, api.CodeInvalidRequest)
		}
	})

	t.Run("get user", func(t *testing.T) {
		u, err := s.client.AdminGetUser(ctx, identity.AdminUserRequest{ActorID: admin.ID, UserID: jane.ID})
		if err != nil || u.ID != jane.ID || len(u.Identities) != 1 || u.PhoneNumber != "13700137000" {
			t.Errorf("user = %+v, %v", u, err)
		}
		self, err := s.client.AdminGetUser(ctx, identity.AdminUserRequest{ActorID: admin.ID, UserID: admin.ID})
		if err != nil || !self.IsAdmin {
			t.Errorf("admin's own view = %+v, %v", self, err)
		}
		_, err = s.client.AdminGetUser(ctx, identity.AdminUserRequest{ActorID: admin.ID, UserID: "5b1b2a57-1a43-4c0c-9df7-4ab0d1f0b0a1"})
		wantCode(t, err, api.CodeNotFound)
	})

	t.Run("non-admins are forbidden", func(t *testing.T) {
		for _, actor := range []string{plain.ID, jane.ID, "", "5b1b2a57-1a43-4c0c-9df7-4ab0d1f0b0a1", "not-a-uuid"} {
			_, err := s.client.AdminSearch(ctx, identity.AdminSearchRequest{ActorID: actor})
			wantCode(t, err, api.CodeForbidden)
			_, err = s.client.AdminGetUser(ctx, identity.AdminUserRequest{ActorID: actor, UserID: jane.ID})
			wantCode(t, err, api.CodeForbidden)
			_, err = s.client.AdminSetDisabled(ctx, identity.AdminDisableRequest{ActorID: actor, UserID: jane.ID, Disabled: true})
			wantCode(t, err, api.CodeForbidden)
		}
	})

	t.Run("disable and enable", func(t *testing.T) {
		u, err := s.client.AdminSetDisabled(ctx, identity.AdminDisableRequest{ActorID: admin.ID, UserID: plain.ID, Disabled: true})
		if err != nil || u.DisabledAt == nil || u.ID != plain.ID {
			t.Fatalf("disable = %+v, %v", u, err)
		}
		// Disabling twice is a no-op: one event.
		if _, err := s.client.AdminSetDisabled(ctx, identity.AdminDisableRequest{ActorID: admin.ID, UserID: plain.ID, Disabled: true}); err != nil {
			t.Fatal(err)
		}
		if got := s.events(t, identity.EventUserUpdated, plain.ID); len(got) != 1 || got[0].User.DisabledAt == nil {
			t.Errorf("user.updated events = %+v", got)
		}
		// The right password learns the account is disabled; a wrong one does not.
		_, err = s.client.PasswordLogin(ctx, identity.PasswordLoginRequest{Username: "ivan", Password: "ivan's password"})
		wantCode(t, err, api.CodeUserDisabled)
		_, err = s.client.PasswordLogin(ctx, identity.PasswordLoginRequest{Username: "ivan", Password: "wrong password"})
		wantCode(t, err, api.CodeInvalidCredentials)
		// Every WeChat path too.
		code, _ := s.mpCode(t, fakewechat.User{})
		if _, err := s.client.Bind(ctx, identity.BindRequest{Username: "ivan", Password: "ivan's password",
			WeChatProof: identity.WeChatProof{Code: code}}); api.CodeOf(err) != api.CodeUserDisabled {
			t.Errorf("bind of a disabled account: %v", err)
		}
		if _, err := s.client.AdminSetDisabled(ctx, identity.AdminDisableRequest{ActorID: admin.ID, UserID: jane.ID, Disabled: true}); err != nil {
			t.Fatal(err)
		}
		code, _ = s.mpCode(t, fakewechat.User{OpenID: wxJane.OpenID})
		_, err = s.client.MiniProgramLogin(ctx, identity.MiniProgramLoginRequest{Code: code})
		wantCode(t, err, api.CodeUserDisabled)
		_, err = s.client.WebResolve(ctx, identity.WebResolveRequest{Code: s.webCode(t, fakewechat.User{UnionID: "union-jane"})})
		wantCode(t, err, api.CodeUserDisabled)

		u, err = s.client.AdminSetDisabled(ctx, identity.AdminDisableRequest{ActorID: admin.ID, UserID: plain.ID, Disabled: false})
		if err != nil || u.DisabledAt != nil {
			t.Fatalf("enable = %+v, %v", u, err)
		}
		if _, err := s.client.PasswordLogin(ctx, identity.PasswordLoginRequest{Username: "ivan", Password: "ivan's password"}); err != nil {
			t.Errorf("login after enable: %v", err)
		}
		_, err = s.client.AdminSetDisabled(ctx, identity.AdminDisableRequest{ActorID: admin.ID, UserID: admin.ID, Disabled: true})
		wantCode(t, err, api.CodeInvalidRequest)
		_, err = s.client.AdminSetDisabled(ctx, identity.AdminDisableRequest{ActorID: admin.ID, UserID: "x", Disabled: true})
		wantCode(t, err, api.CodeNotFound)
	})

	t.Run("revoked admin is refused at once", func(t *testing.T) {
		if _, err := s.db.Exec(`UPDATE users SET is_admin = false WHERE id = $1`, admin.ID); err != nil {
			t.Fatal(err)
		}
		_, err := s.client.AdminSearch(ctx, identity.AdminSearchRequest{ActorID: admin.ID})
		wantCode(t, err, api.CodeForbidden)
	})
}

func TestMetricsEndpoint(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := start(t, func(c *identitysvc.Config) { c.MetricsAddr = addr })
	s.mpLogin(t, fakewechat.User{}, nil)
	_, err = s.client.PasswordLogin(ctx5s(t), identity.PasswordLoginRequest{Username: "nobody", Password: "whatever"})
	wantCode(t, err, api.CodeInvalidCredentials)

	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	for _, path := range []string{"/readyz", "/livez", "/healthz"} {
		if code, body := get(path); code != http.StatusOK || strings.TrimSpace(body) != `{"status":"ok"}` {
			t.Errorf("%s = %d %q", path, code, body)
		}
	}
	poll.Until(t, 15*time.Second, "the login's events published", func() bool {
		_, body := get("/metrics")
		return strings.Contains(body, "wxlogin_identity_outbox_published_total 2")
	})
	_, body := get("/metrics")
	for _, want := range []string{
		`wxlogin_identity_requests_total{code="ok",subject="wxlogin.identity.miniprogram.login"} 1`,
		`wxlogin_identity_requests_total{code="invalid_credentials",subject="wxlogin.identity.password.login"} 1`,
		`wxlogin_identity_request_duration_seconds_bucket{subject="wxlogin.identity.miniprogram.login",le="+Inf"} 1`,
		`wxlogin_identity_outbox_pending 0`,
		"go_goroutines",
		"process_resident_memory_bytes",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if code, _ := get("/nope"); code != http.StatusNotFound {
		t.Errorf("unknown path = %d", code)
	}

	// A port that is taken fails the start, naming the variable.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg := s.cfg
	cfg.MetricsAddr = taken.Addr().String()
	err = identitysvc.Run(ctx5s(t), cfg, slog.New(slog.DiscardHandler))
	if err == nil || !strings.HasPrefix(err.Error(), "WXLOGIN_METRICS_ADDR:") {
		t.Errorf("Run with the metrics port taken = %v, want an error naming WXLOGIN_METRICS_ADDR", err)
	}

	// A database outage makes the replica unready, never dead: /livez does
	// not look at Postgres, so a liveness probe restarts no pod for it.
	dbOutage(t, s.cfg.DatabaseURL, func() {
		waitReadyz(t, addr, http.StatusServiceUnavailable, "database:")
		if code, body := get("/livez"); code != http.StatusOK {
			t.Errorf("/livez during a database outage = %d %q, want 200", code, body)
		}
	})
	waitReadyz(t, addr, http.StatusOK, `{"status":"ok"}`)

	// Without NATS no request reaches the replica: unready (alive), while
	// the metrics stay up.
	s.ns.Shutdown()
	waitReadyz(t, addr, http.StatusServiceUnavailable, "NATS not connected")
	if code, body := get("/livez"); code != http.StatusOK {
		t.Errorf("/livez without NATS = %d %q, want 200", code, body)
	}
	if code, body := get("/metrics"); code != http.StatusOK || !strings.Contains(body, "wxlogin_identity_requests_total") {
		t.Errorf("/metrics without NATS = %d", code)
	}
}

// dbOutage runs during with the database of dsn refusing connections (and
// its open ones cut), as a Postgres outage looks to identity, then lets
// connections in again.
func dbOutage(t *testing.T, dsn string, during func()) {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	u.Path = "/postgres"
	admin, err := sqlx.Open("postgres", u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := admin.Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(`ALTER DATABASE "` + name + `" ALLOW_CONNECTIONS false`)
	defer exec(`ALTER DATABASE "` + name + `" ALLOW_CONNECTIONS true`)
	exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, name)
	during()
}
