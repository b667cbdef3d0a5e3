package main

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

type pollResult struct {
	r   response
	err error
	at  time.Time
}

// longPoll starts GET /qr/{ticket}?wait=25s and returns once the request has
// been written to the gateway, so the poll is (about to be) waiting when the
// caller goes on.
func longPoll(t *testing.T, p *procStack, ticket, pollToken string) <-chan pollResult {
	t.Helper()
	return longPollAt(t, p, "/api/v1/auth/web/qr/", ticket, pollToken)
}

// longPollAt is longPoll on the polls under prefix.
func longPollAt(t *testing.T, p *procStack, prefix, ticket, pollToken string) <-chan pollResult {
	t.Helper()
	out := make(chan pollResult, 1)
	written := make(chan struct{})
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { close(written) }})
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.url(prefix+ticket+"?wait=25s"), nil)
		req.Header.Set("X-Poll-Token", pollToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			out <- pollResult{err: err}
			return
		}
		defer resp.Body.Close()
		r := response{status: resp.StatusCode, header: resp.Header}
		raw, _ := io.ReadAll(resp.Body)
		r.raw = string(raw)
		r.body = decodeJSON(r.raw)
		out <- pollResult{r: r, at: time.Now()}
	}()
	select {
	case <-written:
	case <-time.After(10 * time.Second):
		t.Fatal("long-poll request never written")
	}
	return out
}

// newWebBrowser is a client with its own cookie jar: one browser.
func newWebBrowser() *http.Client {
	jar, _ := cookiejar.New(nil) // never fails without options
	return &http.Client{Jar: jar}
}

// theBrowser shows the QR codes of these tests: createTicket and callback
// use it, as a person's browser creates a ticket and WeChat's QR page sends
// that browser to the callback. Each ticket has its own cookie, so one jar
// serves every test.
var theBrowser = newWebBrowser()

func createTicket(t *testing.T, p *procStack) (ticket, pollToken string) {
	t.Helper()
	r := doWith(t, theBrowser, http.MethodPost, p.url("/api/v1/auth/web/qr"), "application/json", `{}`, nil)
	if r.status != http.StatusCreated {
		t.Fatalf("create ticket: %d %s", r.status, r.raw)
	}
	return str(r, "ticket"), str(r, "poll_token")
}

func poll(t *testing.T, p *procStack, ticket, pollToken string) response {
	t.Helper()
	h := map[string]string{}
	if pollToken != "" {
		h["X-Poll-Token"] = pollToken
	}
	return do(t, http.MethodGet, p.url("/api/v1/auth/web/qr/"+ticket), "", "", h)
}

// callback is WeChat sending the browser that showed the QR code to the
// callback.
func callback(t *testing.T, p *procStack, q url.Values) response {
	t.Helper()
	return callbackFrom(t, theBrowser, p, q)
}

func callbackFrom(t *testing.T, browser *http.Client, p *procStack, q url.Values) response {
	t.Helper()
	return doWith(t, browser, http.MethodGet, p.url("/api/v1/auth/web/callback?"+q.Encode()), "", "", nil)
}

// TestWebQRLoginProcesses is issue 3's acceptance against separate processes
// and a WeChat stand-in.
func TestWebQRLoginProcesses(t *testing.T) {
	p := startProcs(t, "WXLOGIN_QR_TTL=10s")

	t.Run("ticket shape", func(t *testing.T) {
		r := postJSON(t, p.url("/api/v1/auth/web/qr"), map[string]any{})
		if r.status != http.StatusCreated {
			t.Fatalf("%d %s", r.status, r.raw)
		}
		u, err := url.Parse(str(r, "qrconnect_url"))
		if err != nil || !strings.HasSuffix(u.Path, "/connect/qrconnect") {
			t.Fatalf("qrconnect_url %q", str(r, "qrconnect_url"))
		}
		q := u.Query()
		if q.Get("appid") != standInWebAppID || q.Get("scope") != "snsapi_login" || q.Get("response_type") != "code" ||
			q.Get("redirect_uri") != p.url("/api/v1/auth/web/callback") || q.Get("state") == "" {
			t.Errorf("qrconnect_url params: %v", q)
		}
		wx, _ := r.body["wxlogin"].(map[string]any)
		if wx["appid"] != standInWebAppID || wx["state"] != q.Get("state") || wx["redirect_uri"] != q.Get("redirect_uri") {
			t.Errorf("wxlogin params: %v", wx)
		}
		if len(str(r, "poll_token")) < 22 || len(q.Get("state")) < 22 { // 128 bits in base64url
			t.Errorf("state / poll_token too short to hold 128 bits: %s", r.raw)
		}
		if !strings.Contains(r.header.Get("Set-Cookie"), "HttpOnly") {
			t.Errorf("poll cookie not HttpOnly: %q", r.header.Get("Set-Cookie"))
		}
	})

	var webUser string
	t.Run("already-waiting long-poll gets the tokens once", func(t *testing.T) {
		ticket, pollToken := createTicket(t, p)
		waiting := longPoll(t, p, ticket, pollToken)
		p.wx.mint("web-code-1", standInUser{OpenID: "o_web_1", UnionID: "u_shared_1", Nickname: "Web Wendy"})
		page := callback(t, p, url.Values{"code": {"web-code-1"}, "state": {ticket}})
		done := time.Now()
		if page.status != http.StatusOK || !strings.Contains(page.raw, "登录成功") {
			t.Fatalf("callback page: %d %s", page.status, page.raw)
		}
		res := <-waiting
		if res.err != nil || res.r.status != http.StatusOK || str(res.r, "status") != "confirmed" || str(res.r, "access_token") == "" {
			t.Fatalf("long-poll: %v %d %s", res.err, res.r.status, res.r.raw)
		}
		if lag := res.at.Sub(done); lag > time.Second {
			t.Errorf("long-poll answered %s after the callback, want < 1s", lag)
		}
		webUser = userID(t, res.r)
		if again := poll(t, p, ticket, pollToken); again.body["access_token"] != nil {
			t.Fatalf("second poll got tokens again: %s", again.raw)
		}
		// WeChat may call the callback twice: the result stands, nothing breaks.
		if page := callback(t, p, url.Values{"code": {"web-code-1"}, "state": {ticket}}); page.status >= 500 {
			t.Fatalf("second callback: %d %s", page.status, page.raw)
		}
	})

	t.Run("WeChat calling twice with one code: one login", func(t *testing.T) {
		exchanges := func() int {
			p.wx.mu.Lock()
			defer p.wx.mu.Unlock()
			return p.wx.calls["/sns/oauth2/access_token"]
		}
		ticket, pollToken := createTicket(t, p)
		p.wx.mint("web-twice", standInUser{OpenID: "o_web_twice", Nickname: "Twice"})
		before := exchanges()
		q := url.Values{"code": {"web-twice"}, "state": {ticket}}
		for i := range 2 {
			if page := callback(t, p, q); page.status != http.StatusOK || !strings.Contains(page.raw, "登录成功") {
				t.Fatalf("callback %d: %d %s", i+1, page.status, page.raw)
			}
		}
		if n := exchanges() - before; n != 1 {
			t.Errorf("the code was exchanged %d times, want once", n)
		}
		r := poll(t, p, ticket, pollToken)
		if r.status != http.StatusOK || str(r, "access_token") == "" {
			t.Fatalf("poll: %d %s", r.status, r.raw)
		}
		if again := poll(t, p, ticket, pollToken); again.body["access_token"] != nil {
			t.Fatalf("a second login from one code: %s", again.raw)
		}

		// At the same moment: one exchange wins, the other finds the code
		// spent (40163) and leaves the outcome to it.
		ticket, pollToken = createTicket(t, p)
		p.wx.mint("web-twice-2", standInUser{OpenID: "o_web_twice"})
		q = url.Values{"code": {"web-twice-2"}, "state": {ticket}}
		pages := make(chan response, 2)
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() { pages <- callbackNoFatal(theBrowser, p, q) })
		}
		wg.Wait()
		close(pages)
		for page := range pages {
			if page.status >= 500 {
				t.Errorf("concurrent callback: %d %s", page.status, page.raw)
			}
		}
		r = poll(t, p, ticket, pollToken)
		if r.status != http.StatusOK || str(r, "status") != "confirmed" || str(r, "access_token") == "" {
			t.Fatalf("poll after two concurrent callbacks: %d %s, want one login", r.status, r.raw)
		}
	})

	t.Run("the callback belongs to the browser that showed the QR code", func(t *testing.T) {
		other := newWebBrowser()
		ticket, pollToken := createTicket(t, p)
		p.wx.mint("web-mallory", standInUser{OpenID: "o_mallory", Nickname: "Mallory"})
		wantPending := func(t *testing.T) {
			t.Helper()
			if r := poll(t, p, ticket, pollToken); r.status != http.StatusOK || str(r, "status") != "pending" {
				t.Fatalf("poll: %d %s, want pending", r.status, r.raw)
			}
		}
		for name, q := range map[string]url.Values{
			"another browser's code": {"code": {"web-mallory"}, "state": {ticket}},
			"another browser's deny": {"state": {ticket}},
		} {
			page := callbackFrom(t, other, p, q)
			if page.status != http.StatusForbidden || !strings.Contains(page.raw, "qr_wrong_browser") {
				t.Errorf("%s: %d %s", name, page.status, page.raw)
			}
			wantPending(t)
		}
		wrong := do(t, http.MethodGet, p.url("/api/v1/auth/web/callback?"+url.Values{"code": {"web-mallory"}, "state": {ticket}}.Encode()),
			"", "", map[string]string{"Cookie": "wxlogin_qr_" + ticket + "=not-the-poll-token"})
		if wrong.status != http.StatusForbidden || !strings.Contains(wrong.raw, "qr_wrong_browser") {
			t.Errorf("wrong cookie: %d %s", wrong.status, wrong.raw)
		}
		wantPending(t)
		// The code was not spent: it still works where it belongs.
		if page := callback(t, p, url.Values{"code": {"web-mallory"}, "state": {ticket}}); page.status != http.StatusOK {
			t.Fatalf("the creating browser's callback: %d %s", page.status, page.raw)
		}
		if r := poll(t, p, ticket, pollToken); str(r, "status") != "confirmed" {
			t.Fatalf("poll: %d %s, want confirmed", r.status, r.raw)
		}
	})

	t.Run("no tokens without the right poll token", func(t *testing.T) {
		ticket, pollToken := createTicket(t, p)
		p.wx.mint("web-code-2", standInUser{OpenID: "o_web_2"})
		if page := callback(t, p, url.Values{"code": {"web-code-2"}, "state": {ticket}}); page.status != http.StatusOK {
			t.Fatalf("callback: %d %s", page.status, page.raw)
		}
		for _, tok := range []string{"", "wrong-" + pollToken} {
			if r := poll(t, p, ticket, tok); r.body["access_token"] != nil || r.status == http.StatusOK {
				t.Fatalf("poll with token %q: %d %s", tok, r.status, r.raw)
			}
		}
		if r := poll(t, p, ticket, pollToken); str(r, "access_token") == "" {
			t.Fatalf("the right poll token got no tokens: %d %s", r.status, r.raw)
		}
	})

	t.Run("callback without code is a denial", func(t *testing.T) {
		ticket, pollToken := createTicket(t, p)
		if page := callback(t, p, url.Values{"state": {ticket}}); page.status != http.StatusOK {
			t.Fatalf("callback: %d %s", page.status, page.raw)
		}
		if r := poll(t, p, ticket, pollToken); r.status != http.StatusOK || str(r, "status") != "denied" {
			t.Fatalf("poll after denial: %d %s", r.status, r.raw)
		}
	})

	t.Run("unknown state", func(t *testing.T) {
		p.wx.mint("web-code-3", standInUser{OpenID: "o_web_3"})
		if page := callback(t, p, url.Values{"code": {"web-code-3"}, "state": {"no-such-state"}}); page.status < 400 || page.status >= 500 {
			t.Fatalf("unknown state: %d, want 4xx", page.status)
		}
	})

	t.Run("unionid joins the mini-program and the website", func(t *testing.T) {
		p.wx.mint("mini-code-u", standInUser{OpenID: "o_mini_u", UnionID: "u_shared_1"})
		r := postJSON(t, p.url("/api/v1/auth/miniprogram/login"), map[string]any{"code": "mini-code-u"})
		if r.status != http.StatusOK || userID(t, r) != webUser || webUser == "" {
			t.Fatalf("mini-program login with the website's unionid: %d %s (web user %s)", r.status, r.raw, webUser)
		}
	})

	t.Run("expiry", func(t *testing.T) {
		ticket, pollToken := createTicket(t, p)
		until(t, 30*time.Second, "the ticket to expire", func() bool {
			r := poll(t, p, ticket, pollToken)
			if (r.status == http.StatusOK && str(r, "status") == "pending") || r.status == http.StatusTooManyRequests {
				return false // still pending, or polled faster than a browser should
			}
			if r.status != http.StatusGone && r.status != http.StatusNotFound {
				t.Fatalf("poll of an ageing ticket: %d %s", r.status, r.raw)
			}
			return true
		})
	})
}

// callbackNoFatal is callback for a goroutine other than the test's.
func callbackNoFatal(browser *http.Client, p *procStack, q url.Values) response {
	resp, err := browser.Get(p.url("/api/v1/auth/web/callback?" + q.Encode()))
	if err != nil {
		return response{status: -1, raw: err.Error()}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
}
