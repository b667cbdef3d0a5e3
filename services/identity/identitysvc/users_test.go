package identitysvc_test

import (
	"context"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/identity"
	"github.com/wxlogin/wxlogin/shared/wechat/fakewechat"
)

func TestUpdateUser(t *testing.T) {
	s := start(t, nil)
	u := s.register(t, "frank", "frank's password").User

	res, err := s.client.UpdateUser(ctx5s(t), identity.UserUpdateRequest{UserID: u.ID,
		Profile: identity.Profile{Nickname: ptr("弗兰克"), AvatarURL: ptr("https://cdn.example.com/a.png"), Gender: ptr(1),
			Language: ptr("zh_CN"), City: ptr("Hangzhou"), Province: ptr("Zhejiang"), Country: ptr("China")},
		Email: ptr("frank@example.com"), DateOfBirth: ptr("1990-02-03"), Description: ptr("写代码的")})
	if err != nil {
		t.Fatal(err)
	}
	want := api.User{ID: u.ID, Username: "frank", Nickname: "弗兰克", AvatarURL: "https://cdn.example.com/a.png", Gender: 1,
		Language: "zh_CN", City: "Hangzhou", Province: "Zhejiang", Country: "China", Email: "frank@example.com",
		DateOfBirth: "1990-02-03", Description: "写代码的", CreatedAt: res.CreatedAt, LastLoginAt: res.LastLoginAt}
	if !reflect.DeepEqual(res, want) {
		t.Errorf("updated user = %+v\nwant %+v", res, want)
	}
	events := s.events(t, identity.EventUserUpdated, u.ID)
	if len(events) != 1 || events[0].User.Email != "frank@example.com" || events[0].User.DateOfBirth != "1990-02-03" {
		t.Errorf("user.updated events = %+v", events)
	}

	// Nil fields stay; "" clears.
	res, err = s.client.UpdateUser(ctx5s(t), identity.UserUpdateRequest{UserID: u.ID, Email: ptr(""), DateOfBirth: ptr("")})
	if err != nil || res.Email != "" || res.DateOfBirth != "" || res.Nickname != "弗兰克" || res.City != "Hangzhou" {
		t.Errorf("clearing = %+v, %v", res, err)
	}

	today := time.Now().UTC().Format(time.DateOnly)
	nextYear := time.Now().UTC().AddDate(1, 0, 0).Format(time.DateOnly)
	for _, tc := range []struct {
		name string
		req  identity.UserUpdateRequest
		want api.Code // "" valid
	}{
		{"gender 3", identity.UserUpdateRequest{Profile: identity.Profile{Gender: ptr(3)}}, api.CodeInvalidRequest},
		{"gender -1", identity.UserUpdateRequest{Profile: identity.Profile{Gender: ptr(-1)}}, api.CodeInvalidRequest},
		{"gender 2", identity.UserUpdateRequest{Profile: identity.Profile{Gender: ptr(2)}}, ""},
		{"avatar not a URL", identity.UserUpdateRequest{Profile: identity.Profile{AvatarURL: ptr("not a url")}}, api.CodeInvalidRequest},
		{"avatar javascript:", identity.UserUpdateRequest{Profile: identity.Profile{AvatarURL: ptr("javascript:alert(1)")}}, api.CodeInvalidRequest},
		{"avatar ftp", identity.UserUpdateRequest{Profile: identity.Profile{AvatarURL: ptr("ftp://example.com/a.png")}}, api.CodeInvalidRequest},
		{"avatar too long", identity.UserUpdateRequest{Profile: identity.Profile{AvatarURL: ptr("https://example.com/" + strings.Repeat("a", 1010))}}, api.CodeInvalidRequest},
		{"avatar cleared", identity.UserUpdateRequest{Profile: identity.Profile{AvatarURL: ptr("")}}, ""},
		{"nickname 64 runes", identity.UserUpdateRequest{Profile: identity.Profile{Nickname: ptr(strings.Repeat("名", 64))}}, ""},
		{"nickname 65 runes", identity.UserUpdateRequest{Profile: identity.Profile{Nickname: ptr(strings.Repeat("名", 65))}}, api.CodeInvalidRequest},
		{"nickname with NUL", identity.UserUpdateRequest{Profile: identity.Profile{Nickname: ptr("a\x00b")}}, api.CodeInvalidRequest},
		{"email without @", identity.UserUpdateRequest{Email: ptr("frank.example.com")}, api.CodeInvalidRequest},
		{"email with a name", identity.UserUpdateRequest{Email: ptr("Frank <frank@example.com>")}, api.CodeInvalidRequest},
		{"email without a dotted domain", identity.UserUpdateRequest{Email: ptr("frank@localhost")}, api.CodeInvalidRequest},
		{"email too long", identity.UserUpdateRequest{Email: ptr(strings.Repeat("a", 64) + "@" + strings.Repeat("b", 186) + ".com")}, api.CodeInvalidRequest},
		{"date not a date", identity.UserUpdateRequest{DateOfBirth: ptr("1990-02-30")}, api.CodeInvalidRequest},
		{"date in another format", identity.UserUpdateRequest{DateOfBirth: ptr("03/02/1990")}, api.CodeInvalidRequest},
		{"date next year", identity.UserUpdateRequest{DateOfBirth: ptr(nextYear)}, api.CodeInvalidRequest},
		{"date today", identity.UserUpdateRequest{DateOfBirth: ptr(today)}, ""},
		{"date before 1900", identity.UserUpdateRequest{DateOfBirth: ptr("1899-12-31")}, api.CodeInvalidRequest},
		{"description 500 runes", identity.UserUpdateRequest{Description: ptr(strings.Repeat("字", 500))}, ""},
		{"description 501 runes", identity.UserUpdateRequest{Description: ptr(strings.Repeat("字", 501))}, api.CodeInvalidRequest},
		{"language 33", identity.UserUpdateRequest{Profile: identity.Profile{Language: ptr(strings.Repeat("l", 33))}}, api.CodeInvalidRequest},
		{"city 65", identity.UserUpdateRequest{Profile: identity.Profile{City: ptr(strings.Repeat("c", 65))}}, api.CodeInvalidRequest},
		{"province 65", identity.UserUpdateRequest{Profile: identity.Profile{Province: ptr(strings.Repeat("p", 65))}}, api.CodeInvalidRequest},
		{"country 65", identity.UserUpdateRequest{Profile: identity.Profile{Country: ptr(strings.Repeat("c", 65))}}, api.CodeInvalidRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(s.events(t, identity.EventUserUpdated, u.ID))
			tc.req.UserID = u.ID
			_, err := s.client.UpdateUser(ctx5s(t), tc.req)
			after := len(s.events(t, identity.EventUserUpdated, u.ID))
			if tc.want == "" {
				if err != nil || after != before+1 {
					t.Errorf("err = %v, events %d -> %d; want success and one event", err, before, after)
				}
				return
			}
			wantCode(t, err, tc.want)
			if after != before {
				t.Errorf("a refused update wrote an event")
			}
		})
	}

	_, err = s.client.UpdateUser(ctx5s(t), identity.UserUpdateRequest{UserID: "5b1b2a57-1a43-4c0c-9df7-4ab0d1f0b0a1", Profile: identity.Profile{Nickname: ptr("x")}})
	wantCode(t, err, api.CodeNotFound)
	if _, err := s.db.Exec(`UPDATE users SET disabled_at = now() WHERE id = $1`, u.ID); err != nil {
		t.Fatal(err)
	}
	_, err = s.client.UpdateUser(ctx5s(t), identity.UserUpdateRequest{UserID: u.ID, Profile: identity.Profile{Nickname: ptr("x")}})
	wantCode(t, err, api.CodeUserDisabled)
}

// The server access token is fetched once and shared through KV by every
// replica; a token WeChat refuses is force-refreshed and the call retried.
func TestSetPhone(t *testing.T) {
	e := newEnv(t)
	a := e.start(t, nil)
	user := a.mpLogin(t, fakewechat.User{}, nil).User

	setPhone := func(s *service, phone string) (api.User, error) {
		code, err := e.fake.MintPhoneCode(fakewechat.DevMiniProgramAppID, phone)
		if err != nil {
			t.Fatal(err)
		}
		return s.client.SetPhone(ctx5s(t), identity.UserPhoneRequest{UserID: user.ID, Code: code})
	}
	res, err := setPhone(a, "+86 13800138000")
	if err != nil || res.PhoneNumber != "13800138000" {
		t.Fatalf("set phone = %+v, %v", res, err)
	}
	if got := e.events(t, identity.EventUserUpdated, user.ID); len(got) != 1 || got[0].User.PhoneNumber != "13800138000" {
		t.Errorf("user.updated events = %+v", got)
	}
	if n := e.calls.count(fakewechat.PathStableToken); n != 1 {
		t.Errorf("stable_token called %d times, want 1", n)
	}
	token := cachedToken(t, a)

	// Another replica uses the shared token.
	b := e.start(t, nil)
	a.stop()
	b.waitServing(t)
	res, err = setPhone(b, "+1 4155550100")
	if err != nil || res.PhoneNumber != "+1 4155550100" {
		t.Fatalf("set phone on the second instance = %+v, %v", res, err)
	}
	if n := e.calls.count(fakewechat.PathStableToken); n != 1 {
		t.Errorf("stable_token called %d times by two replicas, want 1", n)
	}

	for _, errcode := range []int{40001, 42001} {
		t.Run("token refused "+strconv.Itoa(errcode), func(t *testing.T) {
			before := e.calls.count(fakewechat.PathStableToken)
			e.fake.FailNext(fakewechat.PathGetUserPhone, errcode, 1)
			res, err := setPhone(b, "13900139000")
			if err != nil || res.PhoneNumber != "13900139000" {
				t.Fatalf("set phone = %+v, %v", res, err)
			}
			if n := e.calls.count(fakewechat.PathStableToken); n != before+1 {
				t.Errorf("stable_token called %d more times, want 1 (the forced refresh)", n-before)
			}
			fresh := cachedToken(t, b)
			if fresh == token {
				t.Error("the shared token was not replaced")
			}
			token = fresh
		})
	}

	for _, tc := range []struct {
		name    string
		req     identity.UserPhoneRequest
		errcode int
		want    api.Code
	}{
		{"no code", identity.UserPhoneRequest{UserID: user.ID}, 0, api.CodeCodeMissing},
		{"unknown code", identity.UserPhoneRequest{UserID: user.ID, Code: "nope"}, 0, api.CodeWechatCodeInvalid},
		{"web app", identity.UserPhoneRequest{UserID: user.ID, Code: "c", App: "web"}, 0, api.CodeInvalidRequest},
		{"unknown user", identity.UserPhoneRequest{UserID: "5b1b2a57-1a43-4c0c-9df7-4ab0d1f0b0a1", Code: "c"}, 0, api.CodeNotFound},
		{"busy", identity.UserPhoneRequest{UserID: user.ID, Code: "c"}, -1, api.CodeWechatUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.errcode != 0 {
				e.fake.FailNext(fakewechat.PathGetUserPhone, tc.errcode, 1)
			}
			_, err := b.client.SetPhone(ctx5s(t), tc.req)
			wantCode(t, err, tc.want)
		})
	}
	for name, logs := range map[string]string{"first": a.logs.String(), "second": b.logs.String()} {
		if strings.Contains(logs, token) || strings.Contains(logs, "13900139000") {
			t.Errorf("%s instance logged the access token or the phone number", name)
		}
	}
}

// cachedToken reads the shared access token of the mini-program app.
func cachedToken(t *testing.T, s *service) string {
	t.Helper()
	js, err := jetstream.New(s.nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, "wxlogin_wechat")
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(ctx, fakewechat.DevMiniProgramAppID)
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		AccessToken string    `json:"access_token"`
		ExpiresAt   time.Time `json:"expires_at"`
	}
	if err := json.Unmarshal(e.Value(), &v); err != nil || v.AccessToken == "" || time.Until(v.ExpiresAt) < time.Hour {
		t.Fatalf("cached token %s: %v", e.Value(), err)
	}
	return v.AccessToken
}

func TestDeleteIdentity(t *testing.T) {
	s := start(t, nil)
	ctx := ctx5s(t)

	// A WeChat-only user with one identity cannot drop it.
	wx := s.mpLogin(t, fakewechat.User{UnionID: "union-gail"}, nil)
	u, err := s.client.GetUser(ctx, wx.User.ID)
	if err != nil || len(u.Identities) != 1 {
		t.Fatalf("user = %+v, %v", u, err)
	}
	err = s.client.DeleteIdentity(ctx, identity.IdentityDeleteRequest{UserID: u.ID, IdentityID: u.Identities[0].ID})
	wantCode(t, err, api.CodeLastIdentity)

	// With a second identity it can drop one; then not the last.
	web, err := s.client.WebResolve(ctx, identity.WebResolveRequest{Code: s.webCode(t, fakewechat.User{UnionID: "union-gail"})})
	if err != nil || web.User.ID != u.ID {
		t.Fatalf("web login = %+v, %v", web, err)
	}
	u, _ = s.client.GetUser(ctx, u.ID)
	var webID, mpID string
	for _, i := range u.Identities {
		if i.Kind == api.KindWeb {
			webID = i.ID
		} else {
			mpID = i.ID
		}
	}
	if err := s.client.DeleteIdentity(ctx, identity.IdentityDeleteRequest{UserID: u.ID, IdentityID: webID}); err != nil {
		t.Fatal(err)
	}
	err = s.client.DeleteIdentity(ctx, identity.IdentityDeleteRequest{UserID: u.ID, IdentityID: mpID})
	wantCode(t, err, api.CodeLastIdentity)

	// Someone else's identity, or an unknown one, is not found.
	other := s.register(t, "hank", "hank's password")
	for _, tc := range []struct{ name, user, ident string }{
		{"someone else's", other.User.ID, mpID},
		{"unknown", u.ID, "5b1b2a57-1a43-4c0c-9df7-4ab0d1f0b0a1"},
		{"malformed", u.ID, "x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.client.DeleteIdentity(ctx, identity.IdentityDeleteRequest{UserID: tc.user, IdentityID: tc.ident})
			wantCode(t, err, api.CodeNotFound)
		})
	}

	// An account with a password can drop its only identity, and the
	// person's next WeChat login is a new account, not this one.
	code, wxUser := s.mpCode(t, fakewechat.User{UnionID: "union-hank"})
	if _, err := s.client.Bind(ctx, identity.BindRequest{Username: "hank", Password: "hank's password",
		WeChatProof: identity.WeChatProof{Code: code}}); err != nil {
		t.Fatal(err)
	}
	h, _ := s.client.GetUser(ctx, other.User.ID)
	if len(h.Identities) != 1 {
		t.Fatalf("hank's identities = %+v", h.Identities)
	}
	if err := s.client.DeleteIdentity(ctx, identity.IdentityDeleteRequest{UserID: h.ID, IdentityID: h.Identities[0].ID}); err != nil {
		t.Fatal(err)
	}
	again := s.mpLogin(t, fakewechat.User{OpenID: wxUser.OpenID}, nil)
	if again.User.ID == h.ID || !again.IsNewUser {
		t.Errorf("login after unbinding = %+v: it went back to the account", again)
	}
	web, err = s.client.WebResolve(ctx, identity.WebResolveRequest{Code: s.webCode(t, fakewechat.User{UnionID: "union-hank"})})
	if err != nil || web.User.ID != again.User.ID {
		t.Errorf("website login of the same person = %+v, %v; want %s", web.User.ID, err, again.User.ID)
	}
}
