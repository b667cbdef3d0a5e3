package identitysvc_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/wxlogin/wxlogin/services/identity/identitysvc"
	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/identity"
	"github.com/wxlogin/wxlogin/shared/wechat/fakewechat"
)

func TestRegister(t *testing.T) {
	s := start(t, nil)
	res := s.register(t, "  Alice_01 ", "correct horse")
	if res.User.Username != "alice_01" || !res.IsNewUser || res.Kind != api.KindPassword || res.User.ID == "" {
		t.Errorf("register = %+v", res)
	}
	var hash string
	if err := s.db.Get(&hash, `SELECT password_hash FROM users WHERE id = $1`, res.User.ID); err != nil ||
		!strings.HasPrefix(hash, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("password_hash = %q, %v", hash, err)
	}
	if got := s.events(t, identity.EventUserCreated, res.User.ID); len(got) != 1 || got[0].Identity != nil {
		t.Errorf("user.created events = %+v", got)
	}
	if strings.Contains(s.logs.String(), "correct horse") || strings.Contains(s.logs.String(), hash) {
		t.Error("the password or its hash is in the logs")
	}

	for _, tc := range []struct {
		name string
		req  identity.RegisterRequest
		want api.Code
		msg  string // a part of the message
	}{
		{"taken", identity.RegisterRequest{Username: "alice_01", Password: "another pass"}, api.CodeUsernameTaken, "taken"},
		{"taken in other case", identity.RegisterRequest{Username: "ALICE_01", Password: "another pass"}, api.CodeUsernameTaken, "taken"},
		{"short name", identity.RegisterRequest{Username: "ab", Password: "long enough"}, api.CodeInvalidRequest, "3 to 32"},
		{"long name", identity.RegisterRequest{Username: strings.Repeat("a", 33), Password: "long enough"}, api.CodeInvalidRequest, "3 to 32"},
		{"space in name", identity.RegisterRequest{Username: "al ice", Password: "long enough"}, api.CodeInvalidRequest, "only letters"},
		{"non-ascii name", identity.RegisterRequest{Username: "爱丽丝abc", Password: "long enough"}, api.CodeInvalidRequest, "only letters"},
		{"reserved prefix", identity.RegisterRequest{Username: "wx_abc", Password: "long enough"}, api.CodeInvalidRequest, "wx_"},
		{"reserved prefix in caps", identity.RegisterRequest{Username: "WX_abc", Password: "long enough"}, api.CodeInvalidRequest, "wx_"},
		{"short password", identity.RegisterRequest{Username: "bob", Password: "1234567"}, api.CodeInvalidRequest, "8 to 128"},
		{"long password", identity.RegisterRequest{Username: "bob", Password: strings.Repeat("ab", 65)}, api.CodeInvalidRequest, "8 to 128"},
		{"one character", identity.RegisterRequest{Username: "bob", Password: "aaaaaaaaaa"}, api.CodeInvalidRequest, "repeated"},
		{"both proofs", identity.RegisterRequest{Username: "bob", Password: "long enough",
			WeChatProof: identity.WeChatProof{BindToken: "t", Code: "c"}}, api.CodeInvalidRequest, "either"},
		{"unknown bind token", identity.RegisterRequest{Username: "bob", Password: "long enough",
			WeChatProof: identity.WeChatProof{BindToken: "no-such-token"}}, api.CodeInvalidRequest, "bind_token"},
		{"bad code", identity.RegisterRequest{Username: "bob", Password: "long enough",
			WeChatProof: identity.WeChatProof{Code: "no-such-code"}}, api.CodeWechatCodeInvalid, ""},
		{"web app for the code", identity.RegisterRequest{Username: "bob", Password: "long enough",
			WeChatProof: identity.WeChatProof{Code: "c", App: identitysvc.AppWeb}}, api.CodeInvalidRequest, "app"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.client.Register(ctx5s(t), tc.req)
			ae := wantCode(t, err, tc.want)
			if !strings.Contains(ae.Message, tc.msg) {
				t.Errorf("message %q does not say %q", ae.Message, tc.msg)
			}
		})
	}
	var users int
	if err := s.db.Get(&users, `SELECT count(*) FROM users`); err != nil || users != 1 {
		t.Errorf("users = %d, %v; refused registrations created some", users, err)
	}

	t.Run("with a code", func(t *testing.T) {
		code, wxUser := s.mpCode(t, fakewechat.User{})
		res, err := s.client.Register(ctx5s(t), identity.RegisterRequest{Username: "carol", Password: "long enough",
			WeChatProof: identity.WeChatProof{Code: code}})
		if err != nil {
			t.Fatal(err)
		}
		if login := s.mpLogin(t, fakewechat.User{OpenID: wxUser.OpenID}, nil); login.User.ID != res.User.ID {
			t.Errorf("WeChat login reaches %s, want the registered %s", login.User.ID, res.User.ID)
		}
		// That identity cannot make a second account.
		code, _ = s.mpCode(t, fakewechat.User{OpenID: wxUser.OpenID})
		_, err = s.client.Register(ctx5s(t), identity.RegisterRequest{Username: "carol2", Password: "long enough",
			WeChatProof: identity.WeChatProof{Code: code}})
		wantCode(t, err, api.CodeIdentityBound)
	})
}

func TestPasswordLogin(t *testing.T) {
	s := start(t, nil)
	alice := s.register(t, "alice", "alice's password")
	const ip1, ip2 = "203.0.113.7", "198.51.100.9"
	login := func(username, password, ip string) (identity.LoginResult, error) {
		return s.client.PasswordLogin(ctx5s(t), identity.PasswordLoginRequest{Username: username, Password: password, ClientIP: ip})
	}

	res, err := login("Alice", "alice's password", ip1)
	if err != nil || res.User.ID != alice.User.ID || res.IsNewUser || res.Kind != api.KindPassword {
		t.Fatalf("login = %+v, %v", res, err)
	}
	if got := s.events(t, identity.EventUserLoggedIn, alice.User.ID); len(got) != 2 || got[1].Kind != api.KindPassword || got[1].Identity != nil {
		t.Errorf("user.logged_in events (register, login) = %+v", got)
	}

	// Wrong password, unknown user, password-less WeChat account: one answer.
	wx := s.mpLogin(t, fakewechat.User{}, nil)
	for _, tc := range []struct{ name, username, password string }{
		{"wrong password", "alice", "not alice's password"},
		{"unknown user", "nobody", "whatever it is"},
		{"wechat account", wx.User.Username, "no password at all"},
		{"empty", "", ""},
		// No account can have it; Postgres would refuse the NUL (a 500).
		{"NUL in the username", "ali\x00ce", "whatever it is"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := login(tc.username, tc.password, ip2)
			ae := wantCode(t, err, api.CodeInvalidCredentials)
			if ae.Message != "wrong username or password" {
				t.Errorf("message %q", ae.Message)
			}
		})
	}

	t.Run("failure limit per username and IP", func(t *testing.T) {
		for i := range 5 {
			_, err := login("alice", "guess "+strconv.Itoa(i), ip1)
			wantCode(t, err, api.CodeInvalidCredentials)
		}
		// Blocked for that pair, even with the right password...
		_, err := login("alice", "alice's password", ip1)
		ae := wantCode(t, err, api.CodeRateLimited)
		if secs, err := strconv.Atoi(ae.Data[identity.DataRetryAfter]); err != nil || secs < 1 || secs > 15*60 {
			t.Errorf("retry_after = %q", ae.Data[identity.DataRetryAfter])
		}
		// ...but not from another IP, nor for another user from that IP.
		if _, err := login("alice", "alice's password", ip2); err != nil {
			t.Errorf("alice from another IP: %v", err)
		}
		s.register(t, "bob", "bob's password")
		if _, err := login("bob", "bob's password", ip1); err != nil {
			t.Errorf("another user from the blocked IP: %v", err)
		}
	})
}

// The failed-password counts live in NATS KV: another identity instance
// (here: one started after the first stopped) sees them.
func TestPasswordFailuresSharedByInstances(t *testing.T) {
	e := newEnv(t)
	first := e.start(t, nil)
	first.register(t, "alice", "alice's password")
	const ip = "203.0.113.7"
	for i := range 5 {
		_, err := first.client.PasswordLogin(ctx5s(t), identity.PasswordLoginRequest{Username: "alice", Password: "guess " + strconv.Itoa(i), ClientIP: ip})
		wantCode(t, err, api.CodeInvalidCredentials)
	}
	first.stop()
	second := e.start(t, nil)
	_, err := second.client.PasswordLogin(ctx5s(t), identity.PasswordLoginRequest{Username: "alice", Password: "alice's password", ClientIP: ip})
	wantCode(t, err, api.CodeRateLimited)
}

// Seed 004: a WeChat user without an account binds their WeChat to an
// existing username/password account.
func TestBind(t *testing.T) {
	s := start(t, nil)
	dave := s.register(t, "dave", "dave's password")

	t.Run("with a code", func(t *testing.T) {
		code, wxUser := s.mpCode(t, fakewechat.User{UnionID: "union-dave"})
		res, err := s.client.Bind(ctx5s(t), identity.BindRequest{Username: "dave", Password: "dave's password",
			WeChatProof: identity.WeChatProof{Code: code}})
		if err != nil {
			t.Fatal(err)
		}
		if res.User.ID != dave.User.ID || res.IsNewUser {
			t.Fatalf("bind = %+v", res)
		}
		bound := s.events(t, identity.EventUserBound, dave.User.ID)
		if len(bound) != 1 || bound[0].Identity == nil || bound[0].Identity.OpenID != wxUser.OpenID {
			t.Errorf("user.bound events = %+v", bound)
		}
		var unionid string
		if err := s.db.Get(&unionid, `SELECT unionid FROM users WHERE id = $1`, dave.User.ID); err != nil || unionid != "union-dave" {
			t.Errorf("users.unionid = %q, %v", unionid, err)
		}
		if login := s.mpLogin(t, fakewechat.User{OpenID: wxUser.OpenID}, nil); login.User.ID != dave.User.ID {
			t.Errorf("WeChat login reaches %s, want %s", login.User.ID, dave.User.ID)
		}
		// The person's website login (same unionid) reaches the account too.
		web, err := s.client.WebResolve(ctx5s(t), identity.WebResolveRequest{Code: s.webCode(t, fakewechat.User{UnionID: "union-dave"})})
		if err != nil || web.User.ID != dave.User.ID {
			t.Errorf("website login = %+v, %v", web, err)
		}

		// Binding it again is fine and changes nothing.
		code, _ = s.mpCode(t, fakewechat.User{OpenID: wxUser.OpenID})
		if _, err := s.client.Bind(ctx5s(t), identity.BindRequest{Username: "dave", Password: "dave's password",
			WeChatProof: identity.WeChatProof{Code: code}}); err != nil {
			t.Errorf("binding again: %v", err)
		}
		if got := s.events(t, identity.EventUserBound, dave.User.ID); len(got) != 1 {
			t.Errorf("%d user.bound events after binding twice, want 1", len(got))
		}
	})

	for _, tc := range []struct {
		name string
		req  identity.BindRequest
		want api.Code
	}{
		{"no proof", identity.BindRequest{Username: "dave", Password: "dave's password"}, api.CodeInvalidRequest},
		{"both proofs", identity.BindRequest{Username: "dave", Password: "dave's password",
			WeChatProof: identity.WeChatProof{BindToken: "t", Code: "c"}}, api.CodeInvalidRequest},
		{"unknown user", identity.BindRequest{Username: "nobody", Password: "dave's password",
			WeChatProof: identity.WeChatProof{Code: "c"}}, api.CodeInvalidCredentials},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.client.Bind(ctx5s(t), tc.req)
			wantCode(t, err, tc.want)
		})
	}

	t.Run("with a bind token", func(t *testing.T) {
		off := s.env.start(t, func(c *identitysvc.Config) { c.AutoRegister = false })
		s.stop() // every request now goes to the instance without auto-register
		off.waitServing(t)
		code, wxUser := s.mpCode(t, fakewechat.User{})
		_, err := off.client.MiniProgramLogin(ctx5s(t), identity.MiniProgramLoginRequest{Code: code})
		token := wantCode(t, err, api.CodeWechatNotBound).Data[identity.DataBindToken]

		// A wrong password spends nothing.
		_, err = off.client.Bind(ctx5s(t), identity.BindRequest{Username: "dave", Password: "wrong password",
			WeChatProof: identity.WeChatProof{BindToken: token}})
		wantCode(t, err, api.CodeInvalidCredentials)

		res, err := off.client.Bind(ctx5s(t), identity.BindRequest{Username: "dave", Password: "dave's password",
			WeChatProof: identity.WeChatProof{BindToken: token}})
		if err != nil || res.User.ID != dave.User.ID {
			t.Fatalf("bind = %+v, %v", res, err)
		}
		if login := off.mpLogin(t, fakewechat.User{OpenID: wxUser.OpenID}, nil); login.User.ID != dave.User.ID {
			t.Errorf("WeChat login reaches %s, want %s", login.User.ID, dave.User.ID)
		}
		_, err = off.client.Bind(ctx5s(t), identity.BindRequest{Username: "dave", Password: "dave's password",
			WeChatProof: identity.WeChatProof{BindToken: token}})
		wantCode(t, err, api.CodeInvalidRequest) // spent

		t.Run("someone else's identity", func(t *testing.T) {
			erin := off.register(t, "erin", "erin's password")
			code, _ := off.mpCode(t, fakewechat.User{OpenID: wxUser.OpenID})
			_, err := off.client.Bind(ctx5s(t), identity.BindRequest{Username: "erin", Password: "erin's password",
				WeChatProof: identity.WeChatProof{Code: code}})
			wantCode(t, err, api.CodeIdentityBound)
			// Another app of a person whose unionid is on dave's account.
			code, _ = off.mpCode(t, fakewechat.User{UnionID: "union-dave"})
			_, err = off.client.Bind(ctx5s(t), identity.BindRequest{Username: "erin", Password: "erin's password",
				WeChatProof: identity.WeChatProof{Code: code}})
			wantCode(t, err, api.CodeIdentityBound)
			if u, err := off.client.GetUser(ctx5s(t), erin.User.ID); err != nil || len(u.Identities) != 0 {
				t.Errorf("erin = %+v, %v; want no identities", u, err)
			}
		})
	})
}
