package main

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/jmoiron/sqlx"

	"github.com/wxlogin/wxlogin/shared/wechat/fakewechat"
)

// traffic is what a tab asked for and got: every request the browser made
// for it, with the answer's status and headers once they came.
type traffic struct {
	mu   sync.Mutex
	reqs []*httpExchange
	byID map[network.RequestID]*httpExchange
}

type httpExchange struct {
	method, url string
	body        string
	status      int64
	header      network.Headers
}

// recordTraffic starts recording tab's requests and watching its CSP.
func recordTraffic(t *testing.T, tab context.Context) *traffic {
	t.Helper()
	tr := &traffic{byID: map[network.RequestID]*httpExchange{}}
	err := chromedp.Listen(tab, func(ev any) {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			x := &httpExchange{method: e.Request.Method, url: e.Request.URL}
			for _, p := range e.Request.PostDataEntries {
				x.body += string(p.Bytes)
			}
			tr.reqs = append(tr.reqs, x)
			tr.byID[e.RequestID] = x
		case *network.EventResponseReceived:
			if x := tr.byID[e.RequestID]; x != nil {
				x.status, x.header = e.Response.Status, e.Response.Headers
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	watchCSP(t, tab)
	return tr
}

// watchCSP collects the CSP violations of every document tab loads from
// now on (cspViolations reads them). DevTools' own script runs before the
// page's, whatever the page's CSP.
func watchCSP(t *testing.T, tab context.Context) {
	t.Helper()
	if _, err := chromedp.Call(tab, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `window.__csp = []; document.addEventListener('securitypolicyviolation',
			function (e) { window.__csp.push(e.violatedDirective + ' ' + e.blockedURI); });`,
	}); err != nil {
		t.Fatal(err)
	}
}

// find returns the exchanges of method on path (any query).
func (tr *traffic) find(method, path string) []httpExchange {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var out []httpExchange
	for _, x := range tr.reqs {
		if u, err := url.Parse(x.url); err == nil && x.method == method && u.Path == path {
			out = append(out, *x)
		}
	}
	return out
}

// wantOnlyOrigin fails for any request to another origin than base's.
func (tr *traffic) wantOnlyOrigin(t *testing.T, base string) {
	t.Helper()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if len(tr.reqs) == 0 {
		t.Fatal("no request recorded")
	}
	for _, x := range tr.reqs {
		if strings.HasPrefix(x.url, "data:") { // the placeholder avatars, made by the page
			continue
		}
		if x.url != base && !strings.HasPrefix(x.url, base+"/") {
			t.Errorf("the page loaded %s %s: not the gateway's origin %s", x.method, x.url, base)
		}
	}
}

func header(h network.Headers, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			s, _ := v.(string)
			return s
		}
	}
	return ""
}

func cspViolations(t *testing.T, tab context.Context) []string {
	t.Helper()
	v, err := chromedp.Run(tab, chromedp.Evaluate[[]string](`window.__csp || []`))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// waitJS polls the JavaScript predicate expr in tab until it is true.
func waitJS(t *testing.T, tab context.Context, what, expr string) {
	t.Helper()
	if _, err := chromedp.Run(tab, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		t.Fatalf("waiting for %s (%s): %v", what, expr, err)
	}
}

func act(t *testing.T, tab context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(tab, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func text(t *testing.T, tab context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(tab, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

// consoleStack is a stack with the people the console tests look at.
type consoleStack struct {
	*testStack
	carolID, carolOpenID string
	carol                [2]pair // two mini-program sessions of Carol
}

const (
	consoleAdmin    = "console_admin"
	consoleAdminPwd = "Console-Admin-Pass-42"
)

// startConsoleStack starts a stack and fills it: an admin (password), a
// user who is not one, Carol with two mini-program sessions, and two more
// WeChat users.
func startConsoleStack(t *testing.T) *consoleStack {
	t.Helper()
	// The fake WeChat on another site, as WeChat is: the QR sign-in frames it.
	st := &consoleStack{testStack: startCrossSiteStack(t)}
	register := func(username, password string) {
		r := postJSON(t, st.GatewayURL+"/api/v1/auth/register", map[string]string{"username": username, "password": password})
		if r.status != http.StatusCreated {
			t.Fatalf("register %s: %d %s", username, r.status, r.raw)
		}
	}
	register(consoleAdmin, consoleAdminPwd)
	register("plain_paul", "Plain-Paul-Pass-42")
	db := sqlx.MustOpen("postgres", st.dsn)
	defer db.Close()
	if _, err := db.Exec(`UPDATE users SET is_admin = true WHERE username = $1`, consoleAdmin); err != nil {
		t.Fatal(err)
	}

	login := func(u fakewechat.User, nickname string) response {
		r := postJSON(t, st.GatewayURL+"/api/v1/auth/miniprogram/login",
			map[string]any{"code": st.mint(t, u), "user_info": map[string]any{"nickName": nickname, "city": "Hangzhou", "gender": 2}})
		if r.status != http.StatusOK {
			t.Fatalf("login %s: %d %s", nickname, r.status, r.raw)
		}
		return r
	}
	st.carolOpenID = "oCon5ole_Carol_7f3a9c"
	for i := range st.carol {
		r := login(fakewechat.User{OpenID: st.carolOpenID}, "卡罗尔 Carol Console")
		st.carolID = userID(t, r)
		st.carol[i] = pair{access: str(r, "access_token"), refresh: str(r, "refresh_token")}
	}
	login(fakewechat.User{}, "Dave 大卫")
	login(fakewechat.User{}, "Erin Example")
	return st
}

// me is GET /api/v1/me with token.
func (st *consoleStack) me(t *testing.T, token string) response {
	t.Helper()
	return do(t, http.MethodGet, st.GatewayURL+"/api/v1/me", "", "", bearer(token))
}

// signIn signs in on the console's password form as username.
func signIn(t *testing.T, tab context.Context, username, password string) {
	t.Helper()
	act(t, tab, "sign in as "+username,
		chromedp.WaitVisible(chromedp.CSS(`#signin-username`)),
		chromedp.SetValue(chromedp.CSS(`#signin-username`), username),
		chromedp.SetValue(chromedp.CSS(`#signin-password`), password),
		chromedp.Click(chromedp.CSS(`#signin-submit`)))
}

// confirm answers the console's confirmation dialog with Confirm.
func confirm(t *testing.T, tab context.Context, what string) {
	t.Helper()
	act(t, tab, what, chromedp.WaitVisible(chromedp.CSS(`#confirm-ok`)), chromedp.Click(chromedp.CSS(`#confirm-ok`)),
		chromedp.WaitNotVisible(chromedp.CSS(`#confirm`)))
}

// TestAdminConsoleInBrowser drives /admin in Chromium as an operator would:
// sign in, find a user by a piece of the nickname and by openid, revoke one
// of its sessions, disable and enable it, and find both in the audit log;
// all the while the page asks nothing of any other origin.
func TestAdminConsoleInBrowser(t *testing.T) {
	browser := newBrowser(t)
	st := startConsoleStack(t)
	tab := newTab(t, browser)
	tr := recordTraffic(t, tab)
	act(t, tab, "open /admin", chromedp.Navigate(st.GatewayURL+"/admin"))

	t.Run("the page comes with its CSP", func(t *testing.T) {
		pages := tr.find(http.MethodGet, "/admin")
		if len(pages) != 1 || pages[0].status != http.StatusOK {
			t.Fatalf("GET /admin: %+v", pages)
		}
		csp := header(pages[0].header, "Content-Security-Policy")
		for _, want := range []string{"default-src 'self'", "script-src 'self';", "style-src 'self';", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("CSP %q lacks %q", csp, want)
			}
		}
	})

	t.Run("a user who is not an admin is told so", func(t *testing.T) {
		signIn(t, tab, "plain_paul", "Plain-Paul-Pass-42")
		act(t, tab, "not-admin message", chromedp.WaitVisible(chromedp.CSS(`#signin-error[data-code="not_admin"]`)))
		if s := text(t, tab, `#signin-error`); !strings.Contains(s, "not an administrator") {
			t.Errorf("message %q", s)
		}
		// Its tokens were handed back at once.
		until(t, 10*time.Second, "the non-admin's logout", func() bool {
			out := tr.find(http.MethodPost, "/api/v1/auth/logout")
			return len(out) == 1 && out[0].status == http.StatusNoContent
		})
		if visible, err := chromedp.Run(tab, chromedp.Evaluate[bool](`!document.getElementById('nav').hidden`)); err != nil || visible {
			t.Errorf("the console opened for a non-admin (%v)", err)
		}
	})

	signIn(t, tab, consoleAdmin, consoleAdminPwd)
	t.Run("dashboard", func(t *testing.T) {
		act(t, tab, "dashboard", chromedp.WaitVisible(chromedp.CSS(`#view-dashboard`)))
		waitJS(t, tab, "the user count", `document.getElementById('stat-users_total').textContent === '5'`)
		// Carol twice, Dave and Erin.
		if got := text(t, tab, `#logins tr[data-kind="miniprogram"] td.num`); got != "4" {
			t.Errorf("dashboard shows %q mini-program logins, want 4", got)
		}
		saveScreenshot(t, tab, "admin-dashboard.png")
	})

	t.Run("the list, and search by part of the nickname and by openid", func(t *testing.T) {
		act(t, tab, "users", chromedp.Click(chromedp.CSS(`#nav a[data-view="users"]`)), chromedp.WaitVisible(chromedp.CSS(`#view-users`)))
		waitJS(t, tab, "every user listed", `document.querySelectorAll('#users tr').length === 5`)
		saveScreenshot(t, tab, "admin-users.png")
		for _, q := range []string{"Carol Con", st.carolOpenID} {
			act(t, tab, "search "+q, chromedp.SetValue(chromedp.CSS(`#search-q`), q), chromedp.Click(chromedp.CSS(`#search-form button[type="submit"]`)))
			waitJS(t, tab, "Carol alone for "+q, `(function () { var rows = document.querySelectorAll('#users tr');
				return document.getElementById('users').dataset.hash === location.hash && location.hash.indexOf('q=') > 0 &&
					rows.length === 1 && rows[0].dataset.id === '`+st.carolID+`'; })()`)
		}
	})

	sid := [2]string{tokenClaim(st.carol[0].access, "sid"), tokenClaim(st.carol[1].access, "sid")}
	if sid[0] == "" || sid[1] == "" || sid[0] == sid[1] {
		t.Fatalf("session ids %q", sid)
	}
	t.Run("a user's page lists its identities and two sessions", func(t *testing.T) {
		act(t, tab, "open Carol", chromedp.Click(chromedp.CSS(`#users tr a.user-link`)), chromedp.WaitVisible(chromedp.CSS(`#view-user`)))
		waitJS(t, tab, "both sessions", `document.querySelectorAll('#user-sessions tr[data-sid="`+sid[0]+`"], #user-sessions tr[data-sid="`+sid[1]+`"]').length === 2`)
		if got := text(t, tab, `#user-identities`); !strings.Contains(got, "Mini-program") || !strings.Contains(got, devMiniProgramAppID) {
			t.Errorf("identities show %q, want the kind and appid", got)
		}
		if got := text(t, tab, `#user-profile`); strings.Contains(got, "session_key") {
			t.Errorf("profile shows a session_key: %q", got)
		}
	})

	t.Run("revoke one session: it is refused, the other works", func(t *testing.T) {
		act(t, tab, "revoke", chromedp.Click(chromedp.CSS(`#user-sessions button[data-sid="`+sid[0]+`"]`)))
		confirm(t, tab, "confirm the revoke")
		waitJS(t, tab, "one session left", `document.querySelectorAll('#user-sessions tr').length === 1 &&
			document.querySelector('#user-sessions tr[data-sid="`+sid[1]+`"]') !== null`)
		wantProblem(t, st.me(t, st.carol[0].access), http.StatusUnauthorized, "token_revoked")
		if r := st.me(t, st.carol[1].access); r.status != http.StatusOK {
			t.Fatalf("the other session: %d %s", r.status, r.raw)
		}
	})

	t.Run("disable: the user's next request is refused; enable", func(t *testing.T) {
		act(t, tab, "disable", chromedp.Click(chromedp.CSS(`#user-disable`)))
		confirm(t, tab, "confirm the disable")
		act(t, tab, "disabled", chromedp.WaitVisible(chromedp.CSS(`#view-user[data-state="disabled"] #user-enable`)))
		if r := st.me(t, st.carol[1].access); r.status != http.StatusUnauthorized && r.status != http.StatusForbidden {
			t.Fatalf("a disabled user's token: %d %s", r.status, r.raw)
		}
		act(t, tab, "enable", chromedp.Click(chromedp.CSS(`#user-enable`)))
		confirm(t, tab, "confirm the enable")
		act(t, tab, "enabled", chromedp.WaitVisible(chromedp.CSS(`#view-user[data-state="active"] #user-disable`)))
		waitJS(t, tab, "the three actions in the user's history", `document.querySelectorAll('#user-audit tr').length === 3 &&
			Array.prototype.every.call(document.querySelectorAll('#user-audit tr'), function (tr) { return tr.cells[1].textContent === '`+consoleAdmin+`'; })`)
		saveScreenshot(t, tab, "admin-user.png")
	})

	t.Run("the audit log shows both, by the admin, on Carol", func(t *testing.T) {
		act(t, tab, "audit", chromedp.Click(chromedp.CSS(`#nav a[data-view="audit"]`)), chromedp.WaitVisible(chromedp.CSS(`#view-audit`)))
		// The actor by username, the target by id.
		act(t, tab, "filter", chromedp.SetValue(chromedp.CSS(`#audit-actor`), consoleAdmin), chromedp.SetValue(chromedp.CSS(`#audit-target`), st.carolID),
			chromedp.Click(chromedp.CSS(`#audit-form button[type="submit"]`)))
		waitJS(t, tab, "the filtered log", `/actor=[0-9a-f-]{36}/.test(location.hash) && document.getElementById('audit').dataset.hash === location.hash`)
		for _, action := range []string{"session", "disable"} {
			waitJS(t, tab, "the "+action+" entry, named", `Array.prototype.some.call(document.querySelectorAll('#audit tr[data-target="`+st.carolID+`"]'),
				function (tr) { return tr.dataset.action.indexOf('`+action+`') >= 0 && tr.cells[1].textContent === '`+consoleAdmin+`' &&
					tr.cells[3].textContent === '卡罗尔 Carol Console'; })`)
		}
	})

	t.Run("Chinese", func(t *testing.T) {
		act(t, tab, "switch", chromedp.Click(chromedp.CSS(`#lang`)))
		if got := text(t, tab, `#nav a[data-view="users"]`); got != "用户" {
			t.Errorf("nav in Chinese: %q", got)
		}
		act(t, tab, "switch back", chromedp.Click(chromedp.CSS(`#lang`)))
	})

	t.Run("sign out revokes the tokens", func(t *testing.T) {
		act(t, tab, "sign out", chromedp.Click(chromedp.CSS(`#signout`)), chromedp.WaitVisible(chromedp.CSS(`#signin-username`)))
		until(t, 10*time.Second, "the admin's logout", func() bool {
			out := tr.find(http.MethodPost, "/api/v1/auth/logout")
			return len(out) == 2 && out[1].status == http.StatusNoContent
		})
	})

	tr.wantOnlyOrigin(t, st.GatewayURL)
	if v := cspViolations(t, tab); len(v) > 0 {
		t.Errorf("CSP violations: %v", v)
	}
	t.Run("the CSP refuses what it should, and the watch sees it", func(t *testing.T) {
		if _, err := chromedp.Run(tab, chromedp.Evaluate[chromedp.Void](`(function () {
			var img = new Image(); img.src = 'http://127.0.0.2/avatar.png'; document.body.appendChild(img);
			var s = document.createElement('script'); s.textContent = 'window.inlineRan = true'; document.body.appendChild(s);
		})()`)); err != nil {
			t.Fatal(err)
		}
		waitJS(t, tab, "two violations", `window.__csp.length === 2 && !window.inlineRan`)
	})

	// The QR sign-in frames WeChat's page, so it runs in a tab of its own.
	t.Run("sign in with WeChat: not an admin, then an admin", func(t *testing.T) {
		const openid, nickname = "oConsoleWendyWx", "Wendy 微信"
		qr := newTab(t, browser)
		watchCSP(t, qr)
		// A browser that prefers Chinese gets the console in Chinese.
		if _, err := chromedp.Call(qr, emulation.SetUserAgentOverride, emulation.SetUserAgentOverrideParams{
			UserAgent: "Mozilla/5.0 (X11; Linux x86_64) Chrome/140.0 Safari/537.36", AcceptLanguage: "zh-CN,zh;q=0.9,en;q=0.5"}); err != nil {
			t.Fatal(err)
		}
		scan := func() {
			act(t, qr, "show the QR code", chromedp.Navigate(st.GatewayURL+"/admin"),
				chromedp.Click(chromedp.CSS(`#tab-wechat`)), chromedp.Click(chromedp.CSS(`#qr-start`)))
			answerOnPhone(t, browser, phoneURL(t, qrFrame(t, qr))+"&openid="+url.QueryEscape(openid), nickname, true)
		}
		// The phone page offers a known openid only: WeChat has met Wendy.
		if _, _, err := st.Fake.MintCode(devWebAppID, fakewechat.User{OpenID: openid, Nickname: nickname}); err != nil {
			t.Fatal(err)
		}
		scan()
		act(t, qr, "not-admin message", chromedp.WaitVisible(chromedp.CSS(`#signin-error[data-code="not_admin"]`)))
		if got := text(t, qr, `#signin-error`); !strings.Contains(got, "不是管理员") {
			t.Errorf("message %q, want it in Chinese", got)
		}

		db := sqlx.MustOpen("postgres", st.dsn)
		defer db.Close()
		if _, err := db.Exec(`UPDATE users SET is_admin = true WHERE id = (SELECT user_id FROM identities WHERE openid = $1)`, openid); err != nil {
			t.Fatal(err)
		}
		scan()
		act(t, qr, "dashboard", chromedp.WaitVisible(chromedp.CSS(`#view-dashboard`)))
		if got := text(t, qr, `#me`); got != nickname {
			t.Errorf("signed in as %q, want %q", got, nickname)
		}
		// Rights taken away meanwhile: the next call ends the session.
		if _, err := db.Exec(`UPDATE users SET is_admin = false WHERE id = (SELECT user_id FROM identities WHERE openid = $1)`, openid); err != nil {
			t.Fatal(err)
		}
		act(t, qr, "users, as an admin no more", chromedp.Click(chromedp.CSS(`#nav a[data-view="users"]`)),
			chromedp.WaitVisible(chromedp.CSS(`#signin-error[data-code="not_admin_now"]`)))
		if v := cspViolations(t, qr); len(v) > 0 {
			t.Errorf("CSP violations: %v", v)
		}
	})
}

// TestAdminConsoleRefreshesInBrowser: with access tokens of 2 seconds the
// console refreshes ahead of each expiry, spends every refresh token once,
// and stays signed in over several lifetimes.
func TestAdminConsoleRefreshesInBrowser(t *testing.T) {
	browser := newBrowser(t)
	t.Setenv("WXLOGIN_ACCESS_TTL", "2s")
	st := startConsoleStack(t)
	tab := newTab(t, browser)
	tr := recordTraffic(t, tab)
	act(t, tab, "open /admin", chromedp.Navigate(st.GatewayURL+"/admin"))
	signIn(t, tab, consoleAdmin, consoleAdminPwd)
	act(t, tab, "dashboard", chromedp.WaitVisible(chromedp.CSS(`#view-dashboard`)))

	until(t, 30*time.Second, "three silent refreshes", func() bool {
		return len(tr.find(http.MethodPost, "/api/v1/auth/refresh")) >= 3
	})
	act(t, tab, "users", chromedp.Click(chromedp.CSS(`#nav a[data-view="users"]`)))
	waitJS(t, tab, "the list, with the token of the latest refresh", `document.querySelectorAll('#users tr').length === 5`)

	spent := map[string]bool{}
	for i, x := range tr.find(http.MethodPost, "/api/v1/auth/refresh") {
		token, _ := decodeJSON(x.body)["refresh_token"].(string)
		if token == "" || spent[token] {
			t.Errorf("refresh %d sent %q: a refresh token twice, or none", i, x.body)
		}
		spent[token] = true
		if x.status != 0 && x.status != http.StatusOK { // 0: the answer is still on its way
			t.Errorf("refresh %d answered %d", i, x.status)
		}
	}
	for _, x := range tr.find(http.MethodGet, "/api/v1/admin/users") {
		if x.status != http.StatusOK {
			t.Errorf("GET %s answered %d", x.url, x.status)
		}
	}
	if len(cspViolations(t, tab)) > 0 {
		t.Errorf("CSP violations: %v", cspViolations(t, tab))
	}
}

// TestAdminConsolePageProcesses: the gateway binary serves /admin as HTML
// under its CSP, and everything the page names is its own and served.
func TestAdminConsolePageProcesses(t *testing.T) {
	p := startProcs(t)
	r := do(t, http.MethodGet, p.url("/admin"), "", "", nil)
	if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /admin: %d %q", r.status, r.header.Get("Content-Type"))
	}
	csp := r.header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'self'", "script-src 'self';", "style-src 'self';", "connect-src 'self';", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe") {
		t.Errorf("CSP %q allows inline code", csp)
	}
	refs := regexp.MustCompile(`(?i)\b(?:src|href)\s*=\s*"([^"#][^"]*)"`).FindAllStringSubmatch(r.raw, -1)
	if len(refs) < 2 {
		t.Fatalf("the page names %d assets, want its script and stylesheet", len(refs))
	}
	for _, m := range refs {
		if strings.Contains(m[1], ":") || strings.HasPrefix(m[1], "//") {
			t.Errorf("the page loads %q from elsewhere", m[1])
			continue
		}
		if a := do(t, http.MethodGet, p.url("/"+m[1]), "", "", nil); a.status != http.StatusOK || a.raw == "" {
			t.Errorf("GET /%s: %d", m[1], a.status)
		}
	}
}
