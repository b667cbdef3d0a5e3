package main

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/wxlogin/wxlogin/shared/wechat/fakewechat"
)

// newPhoneBrowser is the WeChat browser on a phone: its own cookie jar,
// and it shows each redirect instead of following it, so a test sees every
// hop (to WeChat, back to us, on to the site).
func newPhoneBrowser() *http.Client {
	jar, _ := cookiejar.New(nil) // never fails without options
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

var hexState = regexp.MustCompile(`^[0-9a-f]{32}$`)

// oaAuthorize starts an in-WeChat login in browser and returns WeChat's
// authorization URL it was sent to.
func oaAuthorize(t *testing.T, p *procStack, browser *http.Client, q url.Values) *url.URL {
	t.Helper()
	r := doWith(t, browser, http.MethodGet, p.url("/api/v1/auth/oa/authorize?"+q.Encode()), "", "", nil)
	if r.status != http.StatusFound {
		t.Fatalf("authorize: %d %s", r.status, r.raw)
	}
	loc, err := url.Parse(r.header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// oaCallback is WeChat sending browser back with q (code, state).
func oaCallback(t *testing.T, p *procStack, browser *http.Client, q url.Values) response {
	t.Helper()
	return doWith(t, browser, http.MethodGet, p.url("/api/v1/auth/oa/callback?"+q.Encode()), "", "", nil)
}

// siteRedirect is where a callback sent the browser: the site, with its query.
func siteRedirect(t *testing.T, r response) *url.URL {
	t.Helper()
	if r.status != http.StatusFound {
		t.Fatalf("callback: %d %s, want 302 to the site", r.status, r.raw)
	}
	u, err := url.Parse(r.header.Get("Location"))
	if err != nil || u.Scheme+"://"+u.Host+"/h5/" != standInSite {
		t.Fatalf("callback sent the browser to %q, not the site", r.header.Get("Location"))
	}
	if strings.Contains(u.RawQuery, "token") {
		t.Errorf("a token travels in the URL: %s", u)
	}
	return u
}

// oaLogin runs authorize → (stand-in code for u) → callback in one browser
// and returns the site redirect.
func oaLogin(t *testing.T, p *procStack, code string, u standInUser, q url.Values) *url.URL {
	t.Helper()
	browser := newPhoneBrowser()
	wx := oaAuthorize(t, p, browser, q)
	u.AppID = standInOAAppID
	u.Scope = wx.Query().Get("scope")
	p.wx.mint(code, u)
	return siteRedirect(t, oaCallback(t, p, browser, url.Values{"code": {code}, "state": {wx.Query().Get("state")}}))
}

func exchange(t *testing.T, p *procStack, code string) response {
	t.Helper()
	return postJSON(t, p.url("/api/v1/auth/oa/exchange"), map[string]any{"code": code})
}

// TestOAWebLoginProcesses is issue 11's in-WeChat browser login against
// separate processes and the WeChat stand-in.
func TestOAWebLoginProcesses(t *testing.T) {
	p := startProcs(t)
	site := standInSite + "done?tab=me"

	t.Run("authorize sends the browser to WeChat with a state bound to it", func(t *testing.T) {
		browser := newPhoneBrowser()
		r := doWith(t, browser, http.MethodGet, p.url("/api/v1/auth/oa/authorize?"+url.Values{"redirect_uri": {site}, "state": {"site42"}}.Encode()), "", "", nil)
		if r.status != http.StatusFound {
			t.Fatalf("%d %s", r.status, r.raw)
		}
		raw := r.header.Get("Location")
		if !strings.HasSuffix(raw, "#wechat_redirect") {
			t.Errorf("Location %q lacks #wechat_redirect", raw)
		}
		loc, _ := url.Parse(raw)
		q := loc.Query()
		if loc.Path != "/connect/oauth2/authorize" || q.Get("appid") != standInOAAppID || q.Get("redirect_uri") != p.url("/api/v1/auth/oa/callback") ||
			q.Get("response_type") != "code" || q.Get("scope") != "snsapi_userinfo" || !hexState.MatchString(q.Get("state")) {
			t.Errorf("WeChat authorize URL %s", raw)
		}
		if q.Get("state") == "site42" || strings.Contains(raw, "site42") {
			t.Error("the site's state went to WeChat instead of our own")
		}
		ck := r.header.Get("Set-Cookie")
		if !strings.Contains(ck, "wxlogin_oa_"+q.Get("state")+"=") || !strings.Contains(ck, "HttpOnly") || !strings.Contains(ck, "SameSite=Lax") {
			t.Errorf("state cookie %q", ck)
		}
		if base := oaAuthorize(t, p, browser, url.Values{"redirect_uri": {site}, "scope": {"snsapi_base"}}); base.Query().Get("scope") != "snsapi_base" {
			t.Errorf("scope=snsapi_base: %s", base)
		}
	})

	t.Run("a redirect_uri not allowed is refused", func(t *testing.T) {
		for _, bad := range []string{"", "https://site.example.evil/h5/", "https://evil.example/h5/", "https://site.example/admin",
			"https://site.example@evil.example/h5/", "https://site.example/h5/../admin", "http://site.example/h5/", "https://site.example/h5/x#y"} {
			r := do(t, http.MethodGet, p.url("/api/v1/auth/oa/authorize?"+url.Values{"redirect_uri": {bad}}.Encode()), "", "", nil)
			wantProblem(t, r, http.StatusBadRequest, "invalid_redirect_uri")
			if r.header.Get("Set-Cookie") != "" || r.header.Get("Location") != "" {
				t.Errorf("%q: a refused authorize set a cookie or redirected", bad)
			}
		}
		r := do(t, http.MethodGet, p.url("/api/v1/auth/oa/authorize?"+url.Values{"redirect_uri": {site}, "scope": {"snsapi_login"}}.Encode()), "", "", nil)
		wantProblem(t, r, http.StatusBadRequest, "invalid_request")
	})

	var oaUser string
	t.Run("the same browser's callback goes to the site with a one-time code", func(t *testing.T) {
		browser := newPhoneBrowser()
		wx := oaAuthorize(t, p, browser, url.Values{"redirect_uri": {site}, "state": {"site42"}})
		p.wx.mint("oa-code-1", standInUser{OpenID: "o_oa_olga", UnionID: "u_olga", Nickname: "OA Olga", AppID: standInOAAppID, Scope: "snsapi_userinfo"})
		cb := url.Values{"code": {"oa-code-1"}, "state": {wx.Query().Get("state")}}
		back := siteRedirect(t, oaCallback(t, p, browser, cb))
		bq := back.Query()
		if back.Path != "/h5/done" || bq.Get("tab") != "me" || bq.Get("state") != "site42" || bq.Get("wxlogin_code") == "" || bq.Has("error") {
			t.Fatalf("site redirect %s", back)
		}

		r := exchange(t, p, bq.Get("wxlogin_code"))
		if r.status != http.StatusOK || str(r, "access_token") == "" || str(r, "refresh_token") == "" {
			t.Fatalf("exchange: %d %s", r.status, r.raw)
		}
		if u, _ := r.body["user"].(map[string]any); u["nickname"] != "OA Olga" {
			t.Errorf("exchange user %v, want WeChat's nickname", r.body["user"])
		}
		if kind := tokenClaim(str(r, "access_token"), "kind"); kind != "officialaccount" {
			t.Errorf("access token kind %q", kind)
		}
		oaUser = userID(t, r)
		wantProblem(t, exchange(t, p, bq.Get("wxlogin_code")), http.StatusBadRequest, "login_code_invalid")
		wantProblem(t, exchange(t, p, "not-a-code"), http.StatusBadRequest, "login_code_invalid")

		// WeChat (or someone) replays the callback: the state is spent.
		again := oaCallback(t, p, browser, cb)
		if again.status != http.StatusNotFound || strings.Contains(again.header.Get("Location"), "wxlogin_code") {
			t.Errorf("replayed callback: %d %q", again.status, again.header.Get("Location"))
		}
	})

	t.Run("another browser's callback gets no code and leaves the login to its browser", func(t *testing.T) {
		victim := newPhoneBrowser()
		wx := oaAuthorize(t, p, victim, url.Values{"redirect_uri": {site}})
		state := wx.Query().Get("state")
		p.wx.mint("oa-code-other", standInUser{OpenID: "o_oa_mallory", AppID: standInOAAppID, Scope: "snsapi_userinfo"})
		r := oaCallback(t, p, newPhoneBrowser(), url.Values{"code": {"oa-code-other"}, "state": {state}})
		if r.status != http.StatusForbidden || r.header.Get("Location") != "" || strings.Contains(r.raw, "wxlogin_code") {
			t.Fatalf("another browser: %d %q %s", r.status, r.header.Get("Location"), r.raw)
		}
		p.wx.mint("oa-code-victim", standInUser{OpenID: "o_oa_victim", AppID: standInOAAppID, Scope: "snsapi_userinfo"})
		if back := siteRedirect(t, oaCallback(t, p, victim, url.Values{"code": {"oa-code-victim"}, "state": {state}})); back.Query().Get("wxlogin_code") == "" {
			t.Errorf("the right browser got no code after the refused one: %s", back)
		}
	})

	t.Run("a denial goes back with error=access_denied and no code", func(t *testing.T) {
		browser := newPhoneBrowser()
		wx := oaAuthorize(t, p, browser, url.Values{"redirect_uri": {site}, "state": {"s2"}})
		back := siteRedirect(t, oaCallback(t, p, browser, url.Values{"state": {wx.Query().Get("state")}}))
		if q := back.Query(); q.Get("error") != "access_denied" || q.Has("wxlogin_code") || q.Get("state") != "s2" {
			t.Errorf("denial redirect %s", back)
		}
	})

	t.Run("a snapshot-page user goes back with error=snapshot_user and makes no account", func(t *testing.T) {
		db := p.openDB()
		count := func() (n int) {
			if err := db.Get(&n, `SELECT count(*) FROM identities`); err != nil {
				t.Fatal(err)
			}
			return n
		}
		before := count()
		back := oaLogin(t, p, "oa-code-snap", standInUser{OpenID: "o_oa_real", UnionID: "u_snap", Snapshot: true}, url.Values{"redirect_uri": {site}, "state": {"s3"}})
		if q := back.Query(); q.Get("error") != "snapshot_user" || q.Has("wxlogin_code") || q.Get("state") != "s3" {
			t.Errorf("snapshot redirect %s", back)
		}
		if after := count(); after != before {
			t.Errorf("identities %d -> %d: a snapshot user made an account", before, after)
		}
		var n int
		if err := db.Get(&n, `SELECT count(*) FROM identities WHERE openid LIKE 'o_virtual_%'`); err != nil || n != 0 {
			t.Errorf("virtual openids stored: %d %v", n, err)
		}
	})

	t.Run("snsapi_base logs in by the openid", func(t *testing.T) {
		back := oaLogin(t, p, "oa-code-base", standInUser{OpenID: "o_oa_olga", UnionID: "u_olga"}, url.Values{"redirect_uri": {site}, "scope": {"snsapi_base"}})
		r := exchange(t, p, back.Query().Get("wxlogin_code"))
		if r.status != http.StatusOK || userID(t, r) != oaUser {
			t.Errorf("base login: %d %s, want user %s", r.status, r.raw, oaUser)
		}
	})

	t.Run("a mobile app code logs in once", func(t *testing.T) {
		app := p.url("/api/v1/auth/app/login")
		p.wx.mint("app-code-1", standInUser{OpenID: "o_app_ann", UnionID: "u_ann", Nickname: "App Ann", AppID: standInAppAppID})
		r := postJSON(t, app, map[string]any{"code": "app-code-1"})
		if r.status != http.StatusOK || str(r, "access_token") == "" {
			t.Fatalf("app login: %d %s", r.status, r.raw)
		}
		if u, _ := r.body["user"].(map[string]any); u["nickname"] != "App Ann" || r.body["is_new_user"] != true {
			t.Errorf("app user %s", r.raw)
		}
		if kind := tokenClaim(str(r, "access_token"), "kind"); kind != "app" {
			t.Errorf("access token kind %q", kind)
		}
		wantProblem(t, postJSON(t, app, map[string]any{"code": "app-code-1"}), http.StatusUnauthorized, "wechat_code_used")
		wantProblem(t, postJSON(t, app, map[string]any{"code": "never-minted"}), http.StatusUnauthorized, "wechat_code_invalid")
		wantProblem(t, postJSON(t, app, map[string]any{}), http.StatusBadRequest, "code_missing")
		// A website code is not the mobile app's.
		p.wx.mint("web-code-for-app", standInUser{OpenID: "o_web_x"})
		wantProblem(t, postJSON(t, app, map[string]any{"code": "web-code-for-app"}), http.StatusUnauthorized, "wechat_code_invalid")
	})

	t.Run("one unionid is one user across mini-program, app and official account", func(t *testing.T) {
		p.wx.mint("mp-code-zoe", standInUser{OpenID: "o_mp_zoe", UnionID: "u_zoe"})
		mp := postJSON(t, p.url("/api/v1/auth/miniprogram/login"), map[string]any{"code": "mp-code-zoe"})
		p.wx.mint("app-code-zoe", standInUser{OpenID: "o_app_zoe", UnionID: "u_zoe", AppID: standInAppAppID})
		app := postJSON(t, p.url("/api/v1/auth/app/login"), map[string]any{"code": "app-code-zoe"})
		back := oaLogin(t, p, "oa-code-zoe", standInUser{OpenID: "o_oa_zoe", UnionID: "u_zoe", Nickname: "Zoe"}, url.Values{"redirect_uri": {site}})
		oa := exchange(t, p, back.Query().Get("wxlogin_code"))
		for name, r := range map[string]response{"mini-program": mp, "app": app, "official account": oa} {
			if r.status != http.StatusOK {
				t.Fatalf("%s login: %d %s", name, r.status, r.raw)
			}
		}
		id := userID(t, mp)
		if userID(t, app) != id || userID(t, oa) != id {
			t.Fatalf("users mini-program %s, app %s, official account %s: want one", id, userID(t, app), userID(t, oa))
		}
		if app.body["is_new_user"] != false || oa.body["is_new_user"] != false {
			t.Errorf("the app or official account login made a new user")
		}
		me := do(t, http.MethodGet, p.url("/api/v1/me"), "", "", bearer(str(oa, "access_token")))
		kinds := map[string]string{}
		ids, _ := me.body["identities"].([]any)
		for _, raw := range ids {
			m, _ := raw.(map[string]any)
			kinds[m["kind"].(string)], _ = m["appid"].(string)
		}
		want := map[string]string{"miniprogram": standInMiniAppID, "app": standInAppAppID, "officialaccount": standInOAAppID}
		for k, v := range want {
			if kinds[k] != v {
				t.Errorf("GET /me identities %v, want %s on %s", kinds, k, v)
			}
		}

		// The events name each surface: user.bound per new identity,
		// user.logged_in with its kind.
		_, js := p.jetStream()
		seen := map[string]bool{}
		until(t, 10*time.Second, "logged_in events of the app and official account", func() bool {
			for _, m := range streamEvents(t, js, "wxlogin.events.user.logged_in") {
				var ev struct {
					Kind string `json:"kind"`
					User struct {
						ID string `json:"id"`
					} `json:"user"`
					Identity struct {
						Kind  string `json:"kind"`
						AppID string `json:"appid"`
					} `json:"identity"`
				}
				if json.Unmarshal(m.Data, &ev) == nil && ev.User.ID == id {
					seen[ev.Kind] = true
					seen["identity:"+ev.Identity.Kind] = true
				}
			}
			return seen["app"] && seen["officialaccount"] && seen["miniprogram"] && seen["identity:app"] && seen["identity:officialaccount"]
		})
	})
}

// TestOANotBoundProcesses: with auto-register off the in-WeChat login's
// code carries a bind token through the exchange, which registers the
// official account's identity.
func TestOANotBoundProcesses(t *testing.T) {
	p := startProcs(t, "WXLOGIN_AUTO_REGISTER=false")
	back := oaLogin(t, p, "oa-code-nb", standInUser{OpenID: "o_oa_nb", Nickname: "Nia"}, url.Values{"redirect_uri": {standInSite}})
	code := back.Query().Get("wxlogin_code")
	if code == "" {
		t.Fatalf("no wxlogin_code for an unknown user: %s", back)
	}
	r := exchange(t, p, code)
	wantProblem(t, r, http.StatusForbidden, "wechat_not_bound")
	bind := str(r, "bind_token")
	if bind == "" || str(r, "nickname") != "Nia" {
		t.Fatalf("not_bound answer %s", r.raw)
	}
	wantProblem(t, exchange(t, p, code), http.StatusBadRequest, "login_code_invalid")
	reg := postJSON(t, p.url("/api/v1/auth/register"), map[string]any{"username": "nia", "password": "correct horse battery", "bind_token": bind})
	if reg.status != http.StatusCreated {
		t.Fatalf("register with the bind token: %d %s", reg.status, reg.raw)
	}
	me := do(t, http.MethodGet, p.url("/api/v1/me"), "", "", bearer(str(reg, "access_token")))
	if !strings.Contains(me.raw, `"kind":"officialaccount"`) {
		t.Errorf("GET /me after register: %s", me.raw)
	}
	// Now the same WeChat logs straight in.
	again := oaLogin(t, p, "oa-code-nb2", standInUser{OpenID: "o_oa_nb"}, url.Values{"redirect_uri": {standInSite}})
	if r := exchange(t, p, again.Query().Get("wxlogin_code")); r.status != http.StatusOK || userID(t, r) != userID(t, reg) {
		t.Errorf("login after register: %d %s", r.status, r.raw)
	}
}

// TestOAWebLoginWithFake: the devstack's in-WeChat login end to end through
// our fake's pages: the authorization page accepts our callback on the
// official account's web-authorization domain (the gateway's host), the
// "phone" allows, and the demo (the devstack's allowed redirect) gets a
// code that exchanges for tokens with the nickname typed on the phone.
func TestOAWebLoginWithFake(t *testing.T) {
	st := startStack(t)
	browser := newPhoneBrowser()
	demo := st.GatewayURL + "/demo"
	r := doWith(t, browser, http.MethodGet, st.GatewayURL+"/api/v1/auth/oa/authorize?"+url.Values{"redirect_uri": {demo}, "state": {"d1"}}.Encode(), "", "", nil)
	if r.status != http.StatusFound {
		t.Fatalf("authorize: %d %s", r.status, r.raw)
	}
	wx := r.header.Get("Location")
	if !strings.HasPrefix(wx, st.FakeURL+"/connect/oauth2/authorize?") {
		t.Fatalf("authorize went to %q, not the fake", wx)
	}
	page := doWith(t, browser, http.MethodGet, strings.TrimSuffix(wx, "#wechat_redirect"), "", "", nil)
	if page.status != http.StatusOK || !strings.Contains(page.raw, `id="allow"`) {
		t.Fatalf("the fake's authorization page refused our callback: %d %s", page.status, page.raw)
	}
	to, err := st.Fake.AuthorizeInWeChat(wx, fakewechat.User{Nickname: "Fiona", UnionID: "u_fiona"}, fakewechat.OAuth2Allow)
	if err != nil {
		t.Fatal(err)
	}
	cb := doWith(t, browser, http.MethodGet, to, "", "", nil)
	back, err := url.Parse(cb.header.Get("Location"))
	if cb.status != http.StatusFound || err != nil || !strings.HasPrefix(back.String(), demo+"?") || back.Query().Get("state") != "d1" {
		t.Fatalf("callback: %d %q", cb.status, cb.header.Get("Location"))
	}
	ex := postJSON(t, st.GatewayURL+"/api/v1/auth/oa/exchange", map[string]any{"code": back.Query().Get("wxlogin_code")})
	if u, _ := ex.body["user"].(map[string]any); ex.status != http.StatusOK || u["nickname"] != "Fiona" {
		t.Fatalf("exchange: %d %s", ex.status, ex.raw)
	}

	// A mobile app code of the fake logs the same unionid in as the same user.
	code, _, err := st.Fake.MintCode(fakewechat.DevAppAppID, fakewechat.User{UnionID: "u_fiona"})
	if err != nil {
		t.Fatal(err)
	}
	app := postJSON(t, st.GatewayURL+"/api/v1/auth/app/login", map[string]any{"code": code})
	if app.status != http.StatusOK || userID(t, app) != userID(t, ex) {
		t.Errorf("app login: %d %s, want user %s", app.status, app.raw, userID(t, ex))
	}
}

// TestDemoInWeChatInBrowser drives the demo's in-WeChat login in Chromium,
// the tab being the WeChat browser: the demo goes to authorize, the fake
// WeChat (on another site) shows its authorization page as the phone
// would, Allow sends the tab through our callback back to the demo with a
// wxlogin_code, and the demo's exchange shows the user and a token of kind
// officialaccount.
func TestDemoInWeChatInBrowser(t *testing.T) {
	browser := newBrowser(t)
	st := startCrossSiteStack(t)
	tab := newTab(t, browser)
	if err := chromedp.Do(tab,
		chromedp.Navigate(st.GatewayURL+"/demo?mode=oa"),
		chromedp.WaitVisible(chromedp.CSS(`#allow`)),
		chromedp.SetValue(chromedp.CSS(`#nickname`), "Phone Pia"),
		chromedp.Click(chromedp.CSS(`#allow`)),
		chromedp.WaitVisible(chromedp.CSS(`#user-nickname`)),
	); err != nil {
		t.Fatalf("in-WeChat login in the demo: %v", err)
	}
	nickname, err1 := chromedp.Run(tab, chromedp.Text(chromedp.CSS(`#user-nickname`)))
	claims, err2 := chromedp.Run(tab, chromedp.Text(chromedp.CSS(`#claims`)))
	loc, err3 := chromedp.Run(tab, chromedp.Location())
	if err := errors.Join(err1, err2, err3); err != nil {
		t.Fatal(err)
	}
	if nickname != "Phone Pia" || !strings.Contains(claims, `"officialaccount"`) {
		t.Errorf("demo shows %q with claims %s", nickname, claims)
	}
	if strings.Contains(loc, "wxlogin_code") {
		t.Errorf("the spent code stays in the address bar: %s", loc)
	}

	// A refusal on the phone comes back as access_denied (in another
	// profile: this one is logged in now, in every tab).
	deny := newTab(t, browser, chromedp.WithNewBrowserContext())
	if err := chromedp.Do(deny,
		chromedp.Navigate(st.GatewayURL+"/demo?mode=oa"),
		chromedp.WaitVisible(chromedp.CSS(`#deny`)),
		chromedp.Click(chromedp.CSS(`#deny`)),
		chromedp.WaitVisible(chromedp.CSS(`#status[data-status="denied"]`)),
	); err != nil {
		t.Fatalf("denied in-WeChat login in the demo: %v", err)
	}
	saveScreenshot(t, tab, "demo-oa.png")
}
