package sessions

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/identity"
	"github.com/wxlogin/wxlogin/shared/api/session"
)

func (f *fixture) oaStart(t *testing.T) session.OAStart {
	t.Helper()
	st, err := f.svc.OAStart(context.Background(), session.OAStartRequest{Scope: session.ScopeUserInfo,
		RedirectURI: "https://site.example/h5/", SiteState: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	if !validHex(st.State, oaStateBytes) || st.AppID != oaAppID || st.ExpiresIn != int64(session.OAStateTTL/time.Second) {
		t.Fatalf("start: %+v", st)
	}
	return st
}

// TestOAStateOnceAndOnlyInItsBrowser: a state is spent by the browser token
// it was made with, once; a wrong token leaves it; past its 10 minutes it
// is gone.
func TestOAStateOnceAndOnlyInItsBrowser(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	st := f.oaStart(t)
	// The right token with its last character changed (to another one).
	last := "A"
	if strings.HasSuffix(st.BrowserToken, last) {
		last = "B"
	}
	for _, wrong := range []string{"", "short", st.BrowserToken[:len(st.BrowserToken)-1] + last, st.State} {
		if _, err := f.svc.OATake(ctx, session.OATakeRequest{State: st.State, BrowserToken: wrong}); api.CodeOf(err) != api.CodeForbidden {
			t.Errorf("token %q: %v, want forbidden", wrong, err)
		}
	}
	got, err := f.svc.OATake(ctx, session.OATakeRequest{State: st.State, BrowserToken: st.BrowserToken})
	if err != nil || got.RedirectURI != "https://site.example/h5/" || got.SiteState != "s1" || got.AppID != oaAppID || got.Scope != session.ScopeUserInfo {
		t.Fatalf("take: %+v %v", got, err)
	}
	if _, err := f.svc.OATake(ctx, session.OATakeRequest{State: st.State, BrowserToken: st.BrowserToken}); api.CodeOf(err) != api.CodeNotFound {
		t.Errorf("second take: %v, want not_found", err)
	}
	old := f.oaStart(t)
	f.clock.Advance(session.OAStateTTL)
	if _, err := f.svc.OATake(ctx, session.OATakeRequest{State: old.State, BrowserToken: old.BrowserToken}); api.CodeOf(err) != api.CodeNotFound {
		t.Errorf("expired state: %v, want not_found", err)
	}
	for _, bad := range []session.OAStartRequest{
		{Scope: "snsapi_login", RedirectURI: "https://site.example/"},
		{Scope: session.ScopeBase},
		{Scope: session.ScopeBase, RedirectURI: "https://site.example/", App: "nope"},
	} {
		if _, err := f.svc.OAStart(ctx, bad); api.CodeOf(err) != api.CodeInvalidRequest {
			t.Errorf("start %+v: %v, want invalid_request", bad, err)
		}
	}
}

// TestOACodeOnceWithin60s: a login code gives tokens of kind officialaccount
// once, and none after 60 seconds; a not-bound code gives its bind token
// once.
func TestOACodeOnceWithin60s(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	user := &api.User{ID: "5d1c0000-0000-4000-8000-000000000001"}
	lc, err := f.svc.OACode(ctx, session.OACodeRequest{AppID: oaAppID, User: user})
	if err != nil || lc.ExpiresIn != 60 {
		t.Fatalf("code: %+v %v", lc, err)
	}
	res, err := f.svc.OAExchange(ctx, session.OAExchangeRequest{Code: lc.Code})
	if err != nil || res.AccessToken == "" || res.User.ID != user.ID {
		t.Fatalf("exchange: %+v %v", res, err)
	}
	claims, err := f.verifier.Verify(res.AccessToken)
	if err != nil || claims.Kind != api.KindOfficialAccount || claims.ClientID != oaAppID {
		t.Errorf("claims %+v %v", claims, err)
	}
	if _, err := f.svc.OAExchange(ctx, session.OAExchangeRequest{Code: lc.Code}); api.CodeOf(err) != api.CodeLoginCodeInvalid {
		t.Errorf("second exchange: %v, want login_code_invalid", err)
	}

	late, _ := f.svc.OACode(ctx, session.OACodeRequest{AppID: oaAppID, User: user})
	f.clock.Advance(session.OACodeTTL)
	if _, err := f.svc.OAExchange(ctx, session.OAExchangeRequest{Code: late.Code}); api.CodeOf(err) != api.CodeLoginCodeInvalid {
		t.Errorf("exchange after 60 s: %v, want login_code_invalid", err)
	}

	nb, err := f.svc.OACode(ctx, session.OACodeRequest{AppID: oaAppID, BindToken: "bind-token-1", Nickname: "Nia"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.OAExchange(ctx, session.OAExchangeRequest{Code: nb.Code})
	if e, ok := err.(*api.Error); !ok || e.Code != api.CodeWechatNotBound || e.Data[identity.DataBindToken] != "bind-token-1" || e.Data[identity.DataNickname] != "Nia" {
		t.Errorf("not-bound exchange: %v", err)
	}
	if _, err := f.svc.OAExchange(ctx, session.OAExchangeRequest{Code: nb.Code}); api.CodeOf(err) != api.CodeLoginCodeInvalid {
		t.Errorf("second not-bound exchange: %v, want login_code_invalid", err)
	}
	for _, bad := range []session.OACodeRequest{
		{AppID: oaAppID},
		{AppID: oaAppID, User: user, BindToken: "b"},
		{User: user},
		{AppID: oaAppID, User: user, Nickname: "x"},
	} {
		if _, err := f.svc.OACode(ctx, bad); api.CodeOf(err) != api.CodeInvalidRequest {
			t.Errorf("code %+v: %v, want invalid_request", bad, err)
		}
	}
}
