package gatewaysvc_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/services/gateway/gatewaysvc"
	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/session"
	"github.com/wxlogin/wxlogin/shared/poll"
)

const (
	qrURL       = "/api/v1/auth/web/qr"
	callbackURL = "/api/v1/auth/web/callback"
)

func TestQRCreate(t *testing.T) {
	e := newEnv(t)
	base, w := e.upWeb(nil)

	t.Run("ticket, QR page URL and poll cookie", func(t *testing.T) {
		r := postJSON(t, base+qrURL, `{}`)
		wantStatus(t, r, http.StatusCreated)
		ticket, _ := r.body["ticket"].(string)
		poll, _ := r.body["poll_token"].(string)
		if ticket == "" || poll == "" || r.body["expires_in"] != float64(300) {
			t.Fatalf("ticket, poll_token, expires_in: %s", r.raw)
		}
		if got := r.header.Get("Cache-Control"); got != "no-store" {
			t.Errorf("Cache-Control %q, want no-store", got)
		}

		raw, _ := r.body["qrconnect_url"].(string)
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		wantRedirect := testPublicURL + callbackURL
		if u.Scheme+"://"+u.Host != testOpenBase || u.Path != "/connect/qrconnect" || u.Fragment != "wechat_redirect" {
			t.Errorf("qrconnect_url %q: want %s/connect/qrconnect#wechat_redirect", raw, testOpenBase)
		}
		for k, want := range map[string]string{"appid": webAppID, "redirect_uri": wantRedirect, "response_type": "code",
			"scope": "snsapi_login", "state": ticket} {
			if q.Get(k) != want {
				t.Errorf("qrconnect_url %s = %q, want %q", k, q.Get(k), want)
			}
		}
		wx, _ := r.body["wxlogin"].(map[string]any)
		if wx["appid"] != webAppID || wx["scope"] != "snsapi_login" || wx["redirect_uri"] != wantRedirect || wx["state"] != ticket {
			t.Errorf("wxlogin %v", wx)
		}

		cookies := (&http.Response{Header: r.header}).Cookies()
		if len(cookies) != 1 {
			t.Fatalf("cookies %v, want the poll cookie", r.header.Values("Set-Cookie"))
		}
		c := cookies[0]
		// The ticket's own cookie, for its polls and its callback.
		if c.Name != "wxlogin_qr_"+ticket || c.Value != poll || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode ||
			c.Path != "/api/v1/auth/web" || c.MaxAge != 300 || c.Secure {
			t.Errorf("ticket cookie %q", r.header.Get("Set-Cookie"))
		}
	})

	t.Run("app by form", func(t *testing.T) {
		r := do(t, context.Background(), http.MethodPost, base+qrURL, "application/x-www-form-urlencoded", "app=shop", nil)
		wantStatus(t, r, http.StatusCreated)
		w.mu.Lock()
		last := w.creates[len(w.creates)-1]
		w.mu.Unlock()
		if last.App != "shop" {
			t.Errorf("session asked for app %q, want shop", last.App)
		}
	})

	t.Run("empty body", func(t *testing.T) {
		wantStatus(t, do(t, context.Background(), http.MethodPost, base+qrURL, "", "", nil), http.StatusCreated)
	})

	bad := []struct {
		name, contentType, body string
	}{
		{"app not a string", "application/json", `{"app":7}`},
		{"app too long", "application/json", `{"app":"` + strings.Repeat("a", 65) + `"}`},
		{"malformed JSON", "application/json", `{"app":`},
		{"body too big", "application/json", `{"app":"` + strings.Repeat("a", 2<<10) + `"}`},
		{"unknown content type", "text/plain", `app=x`},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			wantProblem(t, do(t, context.Background(), http.MethodPost, base+qrURL, c.contentType, c.body, nil), http.StatusBadRequest, "invalid_request")
		})
	}

	t.Run("unknown app", func(t *testing.T) {
		w.set(func(w *webStub) { w.createFail = api.Errorf(api.CodeInvalidRequest, "no web app named nope") })
		defer w.set(func(w *webStub) { w.createFail = nil })
		wantProblem(t, postJSON(t, base+qrURL, `{"app":"nope"}`), http.StatusBadRequest, "invalid_request")
	})
}

func TestQRCookieSecureOverHTTPS(t *testing.T) {
	e := newEnv(t)
	base, _ := e.upWeb(func(c *gatewaysvc.Config) { c.PublicURL = "https://login.example.test/auth" })
	r := postJSON(t, base+qrURL, `{}`)
	wantStatus(t, r, http.StatusCreated)
	c := (&http.Response{Header: r.header}).Cookies()[0]
	if !c.Secure || c.Path != "/auth/api/v1/auth/web" {
		t.Errorf("poll cookie %q: want Secure, under the public URL's path", r.header.Get("Set-Cookie"))
	}
	wx, _ := r.body["wxlogin"].(map[string]any)
	if wx["redirect_uri"] != "https://login.example.test/auth"+callbackURL {
		t.Errorf("redirect_uri %v", wx["redirect_uri"])
	}
}

// wantPage checks an HTML callback page: status, the result element and
// what it says.
func wantPage(t *testing.T, r response, status int, says string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.raw)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("Content-Type %q, want HTML", ct)
	}
	if !strings.Contains(r.raw, `id="result"`) || !strings.Contains(r.raw, says) {
		t.Errorf("page does not say %q in #result: %s", says, r.raw)
	}
	if r.header.Get("Cache-Control") != "no-store" || r.header.Get("Referrer-Policy") != "no-referrer" {
		t.Errorf("callback page may be cached or leak its URL: %v", r.header)
	}
}

func TestQRCallback(t *testing.T) {
	e := newEnv(t)
	_, w := e.upWeb(nil)

	t.Run("success, then WeChat calls again", func(t *testing.T) {
		ticket, _ := w.putRecord(t, session.QRRecord{App: "site"})
		wantPage(t, w.callback(t, url.Values{"code": {"code-1"}, "state": {ticket}}), http.StatusOK, "登录成功")
		rec, _ := w.record(t, ticket)
		if rec.Status != session.QRConfirmed || rec.User == nil || rec.User.Nickname != "Web code-1" || !rec.IsNewUser {
			t.Fatalf("record after the callback: %+v", rec)
		}
		w.mu.Lock()
		resolved := len(w.resolves)
		app := w.resolves[0].App
		w.mu.Unlock()
		if app != "site" {
			t.Errorf("identity resolved with app %q, want the ticket's", app)
		}

		// The same code again: the first result stands, no second exchange.
		wantPage(t, w.callback(t, url.Values{"code": {"code-1"}, "state": {ticket}}), http.StatusOK, "登录成功")
		// A denial after the fact changes nothing either.
		wantPage(t, w.callback(t, url.Values{"state": {ticket}}), http.StatusOK, "登录成功")
		w.mu.Lock()
		again := len(w.resolves)
		w.mu.Unlock()
		if again != resolved {
			t.Errorf("the code was exchanged %d times, want once", again)
		}
		if rec, _ := w.record(t, ticket); rec.Status != session.QRConfirmed {
			t.Errorf("status %q after the second callback, want confirmed", rec.Status)
		}
	})

	t.Run("no code is a denial", func(t *testing.T) {
		ticket, _ := w.putRecord(t, session.QRRecord{})
		wantPage(t, w.callback(t, url.Values{"state": {ticket}}), http.StatusOK, "已取消")
		if rec, _ := w.record(t, ticket); rec.Status != session.QRDenied || rec.Reason != "denied" {
			t.Errorf("record %+v, want denied", rec)
		}
	})

	t.Run("WeChat refuses the code", func(t *testing.T) {
		w.set(func(w *webStub) {
			w.resolveFail = api.Errorf(api.CodeWechatCodeInvalid, "the code is invalid or expired")
		})
		defer w.set(func(w *webStub) { w.resolveFail = nil })
		ticket, _ := w.putRecord(t, session.QRRecord{})
		wantPage(t, w.callback(t, url.Values{"code": {"stale"}, "state": {ticket}}), http.StatusUnauthorized, "wechat_code_invalid")
		if rec, _ := w.record(t, ticket); rec.Status != session.QRDenied || rec.Reason != "wechat_code_invalid" {
			t.Errorf("record %+v, want denied with the reason, so the browser learns it", rec)
		}
	})

	t.Run("code already used: a concurrent callback's outcome stands", func(t *testing.T) {
		w.set(func(w *webStub) { w.resolveFail = api.Errorf(api.CodeWechatCodeUsed, "the code has been used") })
		defer w.set(func(w *webStub) { w.resolveFail = nil })
		ticket, _ := w.putRecord(t, session.QRRecord{})
		wantPage(t, w.callback(t, url.Values{"code": {"used"}, "state": {ticket}}), http.StatusUnauthorized, "wechat_code_used")
		if rec, _ := w.record(t, ticket); rec.Status != session.QRPending {
			t.Errorf("record %+v, want it left pending for the other callback", rec)
		}
	})

	t.Run("WeChat down", func(t *testing.T) {
		w.set(func(w *webStub) { w.resolveFail = api.Errorf(api.CodeWechatUnavailable, "WeChat is unreachable") })
		defer w.set(func(w *webStub) { w.resolveFail = nil })
		ticket, _ := w.putRecord(t, session.QRRecord{})
		wantPage(t, w.callback(t, url.Values{"code": {"c"}, "state": {ticket}}), http.StatusServiceUnavailable, "登录失败")
	})

	t.Run("unknown state", func(t *testing.T) {
		wantPage(t, w.callback(t, url.Values{"code": {"c"}, "state": {randomToken(t)}}), http.StatusNotFound, "二维码无效")
		wantPage(t, w.callback(t, url.Values{"code": {"c"}, "state": {"no such state!"}}), http.StatusNotFound, "二维码无效")
		wantPage(t, w.callback(t, url.Values{"code": {"c"}}), http.StatusNotFound, "二维码无效")
	})

	t.Run("expired ticket", func(t *testing.T) {
		ticket, _ := w.putRecord(t, session.QRRecord{CreatedAt: time.Now().Add(-10 * time.Minute), ExpiresAt: time.Now().Add(-5 * time.Minute)})
		wantPage(t, w.callback(t, url.Values{"code": {"c"}, "state": {ticket}}), http.StatusGone, "二维码已过期")
	})

	t.Run("malformed code", func(t *testing.T) {
		ticket, _ := w.putRecord(t, session.QRRecord{})
		wantPage(t, w.callback(t, url.Values{"code": {"a b"}, "state": {ticket}}), http.StatusBadRequest, "请求无效")
	})
}

func TestQRPoll(t *testing.T) {
	e := newEnv(t)
	base, w := e.upWeb(nil)
	poll := func(t *testing.T, ticket string, h map[string]string) response {
		t.Helper()
		return get(t, base+qrURL+"/"+ticket, h)
	}

	t.Run("pending with the header and with the cookie", func(t *testing.T) {
		r := postJSON(t, base+qrURL, `{}`)
		wantStatus(t, r, http.StatusCreated)
		ticket, token := r.body["ticket"].(string), r.body["poll_token"].(string)
		p := poll(t, ticket, pollHeader(token))
		wantStatus(t, p, http.StatusOK)
		if p.raw != `{"status":"pending"}` {
			t.Errorf("pending answer %s", p.raw)
		}
		cookie := (&http.Response{Header: r.header}).Cookies()[0]
		p = poll(t, ticket, map[string]string{"Cookie": cookie.Name + "=" + cookie.Value})
		if p.status != http.StatusOK || p.body["status"] != "pending" {
			t.Errorf("poll by cookie: %d %s", p.status, p.raw)
		}
	})

	t.Run("without the right poll token, nothing", func(t *testing.T) {
		ticket, token := w.putRecord(t, session.QRRecord{})
		wantPage(t, w.callback(t, url.Values{"code": {"c"}, "state": {ticket}}), http.StatusOK, "登录成功")
		for name, h := range map[string]map[string]string{
			"no token":     nil,
			"wrong token":  pollHeader(randomToken(t)),
			"wrong cookie": {"Cookie": "wxlogin_qr_" + ticket + "=" + randomToken(t)},
		} {
			r := poll(t, ticket, h)
			wantProblem(t, r, http.StatusNotFound, "qr_ticket_not_found")
			if strings.Contains(r.raw, "access_token") {
				t.Fatalf("%s: tokens handed out: %s", name, r.raw)
			}
		}
		// The ticket is still there for its owner.
		r := poll(t, ticket, pollHeader(token))
		if r.status != http.StatusOK || r.body["status"] != "confirmed" {
			t.Fatalf("owner's poll: %d %s", r.status, r.raw)
		}
	})

	t.Run("confirmed hands the tokens out once", func(t *testing.T) {
		ticket, token := w.putRecord(t, session.QRRecord{})
		wantPage(t, w.callback(t, url.Values{"code": {"once"}, "state": {ticket}}), http.StatusOK, "登录成功")
		r := poll(t, ticket, pollHeader(token))
		wantStatus(t, r, http.StatusOK)
		user, _ := r.body["user"].(map[string]any)
		if r.body["status"] != "confirmed" || r.body["access_token"] == "" || r.body["refresh_token"] == "" ||
			r.body["token_type"] != "Bearer" || user["nickname"] != "Web once" || r.body["is_new_user"] != true {
			t.Fatalf("confirmed answer %s", r.raw)
		}
		if r.header.Get("Cache-Control") != "no-store" {
			t.Errorf("token answer cacheable")
		}
		// The token works.
		if me := get(t, base+"/api/v1/me", bearer(r.body["access_token"].(string))); me.status != http.StatusOK {
			t.Errorf("GET /me with the QR token: %d %s", me.status, me.raw)
		}
		wantProblem(t, poll(t, ticket, pollHeader(token)), http.StatusNotFound, "qr_ticket_not_found")

		logs := e.logs.String()
		for what, secret := range map[string]string{"ticket (WeChat's state)": ticket, "poll token": token,
			"access token": r.body["access_token"].(string), "refresh token": r.body["refresh_token"].(string)} {
			if strings.Contains(logs, secret) {
				t.Errorf("the %s is in the logs", what)
			}
		}
	})

	t.Run("denied", func(t *testing.T) {
		ticket, token := w.putRecord(t, session.QRRecord{})
		wantPage(t, w.callback(t, url.Values{"state": {ticket}}), http.StatusOK, "已取消")
		r := poll(t, ticket, pollHeader(token))
		if r.status != http.StatusOK || r.raw != `{"status":"denied","reason":"denied"}` {
			t.Fatalf("denied answer: %d %s", r.status, r.raw)
		}
	})

	t.Run("expired", func(t *testing.T) {
		ticket, token := w.putRecord(t, session.QRRecord{CreatedAt: time.Now().Add(-6 * time.Minute), ExpiresAt: time.Now().Add(-time.Minute)})
		wantProblem(t, poll(t, ticket, pollHeader(token)), http.StatusGone, "qr_ticket_expired")
	})

	t.Run("unknown or malformed ticket", func(t *testing.T) {
		wantProblem(t, poll(t, randomToken(t), pollHeader(randomToken(t))), http.StatusNotFound, "qr_ticket_not_found")
		wantProblem(t, poll(t, "short", pollHeader(randomToken(t))), http.StatusNotFound, "qr_ticket_not_found")
		wantProblem(t, poll(t, strings.Repeat("a", 200), pollHeader(randomToken(t))), http.StatusNotFound, "qr_ticket_not_found")
	})

	t.Run("bad wait", func(t *testing.T) {
		ticket, token := w.putRecord(t, session.QRRecord{})
		for _, v := range []string{"soon", "-1s"} {
			wantProblem(t, get(t, base+qrURL+"/"+ticket+"?wait="+v, pollHeader(token)), http.StatusBadRequest, "invalid_request")
		}
	})

	t.Run("wait ends with pending", func(t *testing.T) {
		ticket, token := w.putRecord(t, session.QRRecord{})
		began := time.Now()
		r := get(t, base+qrURL+"/"+ticket+"?wait=300ms", pollHeader(token))
		if took := time.Since(began); r.status != http.StatusOK || r.body["status"] != "pending" || took < 300*time.Millisecond {
			t.Fatalf("wait=300ms answered %d %s after %s", r.status, r.raw, took)
		}
	})

	t.Run("a long-poll ends when the ticket expires", func(t *testing.T) {
		ticket, token := w.putRecord(t, session.QRRecord{ExpiresAt: time.Now().Add(300 * time.Millisecond)})
		began := time.Now()
		r := get(t, base+qrURL+"/"+ticket+"?wait=25s", pollHeader(token))
		wantProblem(t, r, http.StatusGone, "qr_ticket_expired")
		if took := time.Since(began); took > 5*time.Second {
			t.Errorf("answered after %s, want at expiry", took)
		}
	})

	t.Run("per-ticket rate limit", func(t *testing.T) {
		ticket, token := w.putRecord(t, session.QRRecord{})
		var limited response
		for i := 0; i < 20; i++ {
			if r := poll(t, ticket, pollHeader(token)); r.status == http.StatusTooManyRequests {
				limited = r
				break
			}
		}
		wantProblem(t, limited, http.StatusTooManyRequests, "rate_limited")
		if n, err := strconv.Atoi(limited.header.Get("Retry-After")); err != nil || n < 1 {
			t.Errorf("Retry-After %q", limited.header.Get("Retry-After"))
		}
		// Another ticket is not affected.
		other, otherToken := w.putRecord(t, session.QRRecord{})
		wantStatus(t, poll(t, other, pollHeader(otherToken)), http.StatusOK)
	})
}

// longPoll starts GET /qr/{ticket}?wait=25s and returns once the gateway
// has logged that the poll waits (so a write after it is a change the poll
// must notice).
func longPoll(t *testing.T, e *env, base, ticket, token string) <-chan response {
	t.Helper()
	rid := "poll-" + randomToken(t)
	out := make(chan response, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
		defer cancel()
		h := pollHeader(token)
		h["X-Request-ID"] = rid
		out <- doNoFatal(ctx, http.MethodGet, base+qrURL+"/"+ticket+"?wait=25s", h)
	}()
	poll.Until(t, 10*time.Second, "the long-poll to wait", func() bool {
		return strings.Contains(e.logs.String(), rid)
	})
	return out
}

// doNoFatal is do for a goroutine other than the test's.
func doNoFatal(ctx context.Context, method, url string, header map[string]string) response {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return response{raw: err.Error()}
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return response{raw: err.Error()}
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := response{status: res.StatusCode, header: res.Header, raw: string(raw)}
	r.body = decodeBody(r.raw)
	return r
}

func TestQRLongPoll(t *testing.T) {
	e := newEnv(t)
	base, w := e.upWeb(nil)

	t.Run("a waiting poll answers within moments of the callback", func(t *testing.T) {
		ticket, token := w.putRecord(t, session.QRRecord{})
		waiting := longPoll(t, e, base, ticket, token)
		select {
		case r := <-waiting:
			t.Fatalf("long-poll answered before anything happened: %d %s", r.status, r.raw)
		default:
		}
		wantPage(t, w.callback(t, url.Values{"code": {"fast"}, "state": {ticket}}), http.StatusOK, "登录成功")
		done := time.Now()
		select {
		case r := <-waiting:
			if lag := time.Since(done); lag > 2*time.Second {
				t.Errorf("answered %s after the callback", lag)
			}
			if r.status != http.StatusOK || r.body["status"] != "confirmed" || r.body["access_token"] == nil {
				t.Fatalf("long-poll answer %d %s", r.status, r.raw)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("the long-poll did not answer after the callback")
		}
	})

	t.Run("a waiting poll learns a denial", func(t *testing.T) {
		ticket, token := w.putRecord(t, session.QRRecord{})
		waiting := longPoll(t, e, base, ticket, token)
		wantPage(t, w.callback(t, url.Values{"state": {ticket}}), http.StatusOK, "已取消")
		select {
		case r := <-waiting:
			if r.status != http.StatusOK || r.body["status"] != "denied" {
				t.Fatalf("long-poll answer %d %s", r.status, r.raw)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("the long-poll did not answer after the denial")
		}
	})

	t.Run("two waiting polls: one gets the tokens", func(t *testing.T) {
		ticket, token := w.putRecord(t, session.QRRecord{})
		a := longPoll(t, e, base, ticket, token)
		b := longPoll(t, e, base, ticket, token)
		wantPage(t, w.callback(t, url.Values{"code": {"race"}, "state": {ticket}}), http.StatusOK, "登录成功")
		var got, lost int
		for _, ch := range []<-chan response{a, b} {
			select {
			case r := <-ch:
				switch {
				case r.status == http.StatusOK && r.body["access_token"] != nil:
					got++
				case r.status == http.StatusNotFound && r.body["code"] == "qr_ticket_not_found":
					lost++
				default:
					t.Errorf("unexpected answer %d %s", r.status, r.raw)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("a long-poll did not answer")
			}
		}
		if got != 1 || lost != 1 {
			t.Errorf("%d polls got tokens and %d lost, want one each", got, lost)
		}
	})

	t.Run("two polls on a confirmed ticket: one gets the tokens", func(t *testing.T) {
		ticket, token := w.putRecord(t, session.QRRecord{})
		wantPage(t, w.callback(t, url.Values{"code": {"pair"}, "state": {ticket}}), http.StatusOK, "登录成功")
		var wg sync.WaitGroup
		results := make([]response, 4)
		for i := range results {
			wg.Go(func() {
				results[i] = doNoFatal(context.Background(), http.MethodGet, base+qrURL+"/"+ticket, pollHeader(token))
			})
		}
		wg.Wait()
		got := 0
		for _, r := range results {
			switch {
			case r.status == http.StatusOK && r.body["access_token"] != nil:
				got++
			case r.status == http.StatusNotFound:
			default:
				t.Errorf("unexpected answer %d %s", r.status, r.raw)
			}
		}
		if got != 1 {
			t.Errorf("%d polls got tokens, want exactly 1", got)
		}
	})

	t.Run("a long-poll whose client leaves is let go", func(t *testing.T) {
		ticket, token := w.putRecord(t, session.QRRecord{})
		ctx, cancel := context.WithCancel(context.Background())
		rid := "gone-" + randomToken(t)
		done := make(chan struct{})
		go func() {
			defer close(done)
			h := pollHeader(token)
			h["X-Request-ID"] = rid
			doNoFatal(ctx, http.MethodGet, base+qrURL+"/"+ticket+"?wait=25s", h)
		}()
		poll.Until(t, 10*time.Second, "the long-poll to wait", func() bool { return strings.Contains(e.logs.String(), rid) })
		cancel()
		<-done
		// The gateway's access log records the request once its handler
		// has returned: well before the 25 s wait.
		poll.Until(t, 5*time.Second, "the abandoned poll's handler to return", func() bool {
			for _, line := range strings.Split(e.logs.String(), "\n") {
				if strings.Contains(line, rid) && !strings.Contains(line, "QR poll waiting") {
					return true
				}
			}
			return false
		})
	})
}

// TestDemoPage: /demo is the page, its script from /demo/assets, and that
// script builds on the browser client the gateway serves from
// /clients/web/wxlogin.js, which is clients/web's one copy.
func TestDemoPage(t *testing.T) {
	e := newEnv(t)
	base, _ := e.upWeb(nil)
	r := get(t, base+"/demo", nil)
	wantStatus(t, r, http.StatusOK)
	if ct := r.header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	for _, want := range []string{`id="qr-frame"`, `id="status" data-status="pending"`, `id="user-nickname"`, `id="user-avatar"`,
		`id="claims"`, `id="logout"`, `id="retry"`, `<script type="module" src="demo/assets/demo.js"></script>`} {
		if !strings.Contains(r.raw, want) {
			t.Errorf("demo page lacks %q", want)
		}
	}
	for _, bad := range []string{"<script>", "<link ", "cdn", "@import", " on" + "click="} {
		if strings.Contains(strings.ToLower(r.raw), bad) {
			t.Errorf("demo page has inline code or loads something from elsewhere (%q)", bad)
		}
	}
	csp := r.header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self';", "style-src 'sha256-", "connect-src 'self'", "frame-src 'self' " + testOpenBase} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}

	js := get(t, base+"/demo/assets/demo.js", nil)
	wantStatus(t, js, http.StatusOK)
	if ct := js.header.Get("Content-Type"); ct != "text/javascript; charset=utf-8" {
		t.Errorf("demo.js Content-Type %q", ct)
	}
	for _, want := range []string{"from '../../clients/web/wxlogin.js'", "wx.webLogin(", "wx.followLogin(", "wx.startInWeChatLogin(",
		"wx.completeInWeChatLogin(", "session.fetch('api/v1/me'", "session.logout()", "wx.register("} {
		if !strings.Contains(js.raw, want) {
			t.Errorf("demo.js lacks %q", want)
		}
	}
	wantStatus(t, get(t, base+"/demo/assets/demo.go", nil), http.StatusNotFound)

	client := get(t, base+"/clients/web/wxlogin.js", nil)
	wantStatus(t, client, http.StatusOK)
	if ct := client.header.Get("Content-Type"); ct != "text/javascript; charset=utf-8" {
		t.Errorf("wxlogin.js Content-Type %q", ct)
	}
	if cc := client.header.Get("Cache-Control"); !strings.Contains(cc, "max-age=") {
		t.Errorf("wxlogin.js Cache-Control %q", cc)
	}
	// The repository's clients/web (this package is three levels below the root).
	file, err := os.ReadFile(filepath.Join("..", "..", "..", "clients", "web", "wxlogin.js"))
	if err != nil {
		t.Fatal(err)
	}
	if client.raw != string(file) {
		t.Error("GET /clients/web/wxlogin.js is not clients/web/wxlogin.js")
	}
	etag := client.header.Get("ETag")
	if again := get(t, base+"/clients/web/wxlogin.js", map[string]string{"If-None-Match": etag}); etag == "" || again.status != http.StatusNotModified {
		t.Errorf("If-None-Match %q: %d, want 304", etag, again.status)
	}
}

func TestLongPollEndsOnShutdown(t *testing.T) {
	e := newEnv(t)
	_, w := e.upWeb(nil)
	// A second gateway on the same NATS, which this test stops itself.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() {
		served <- gatewaysvc.Serve(ctx, gatewaysvc.Config{NATSURL: e.ns.ClientURL(), WechatOpenBase: testOpenBase}, e.log, ln)
	}()
	base := "http://" + ln.Addr().String()
	poll.Until(t, 10*time.Second, "the second gateway ready", func() bool {
		return get(t, base+"/readyz", nil).status == http.StatusOK
	})

	ticket, token := w.putRecord(t, session.QRRecord{})
	waiting := longPoll(t, e, base, ticket, token)
	stopped := time.Now()
	cancel()
	select {
	case r := <-waiting:
		if r.status != http.StatusOK || r.body["status"] != "pending" {
			t.Errorf("long-poll at shutdown: %d %s, want pending (the browser polls again elsewhere)", r.status, r.raw)
		}
		if took := time.Since(stopped); took > 5*time.Second {
			t.Errorf("long-poll answered %s after shutdown began", took)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("long-poll held the shutdown")
	}
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Serve did not return")
	}
}

// TestManyLongPolls: many browsers wait at once on one gateway (one shared
// watch); each learns its own ticket's outcome within moments.
func TestManyLongPolls(t *testing.T) {
	const n = 200
	e := newEnv(t)
	base, w := e.upWeb(nil)
	type waiting struct {
		ticket string
		rid    string
		out    chan response
	}
	polls := make([]waiting, n)
	for i := range polls {
		ticket, token := w.putRecord(t, session.QRRecord{})
		p := waiting{ticket: ticket, rid: "many-" + randomToken(t), out: make(chan response, 1)}
		polls[i] = p
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
			defer cancel()
			h := pollHeader(token)
			h["X-Request-ID"] = p.rid
			p.out <- doNoFatal(ctx, http.MethodGet, base+qrURL+"/"+p.ticket+"?wait=25s", h)
		}()
	}
	poll.Until(t, 20*time.Second, "every long-poll to wait", func() bool {
		logs := e.logs.String()
		for _, p := range polls {
			if !strings.Contains(logs, p.rid) {
				return false
			}
		}
		return true
	})

	written := time.Now()
	for _, p := range polls {
		if _, err := w.qrComplete(context.Background(), session.QRCompleteRequest{Ticket: p.ticket, Denied: true, Reason: "denied"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range polls {
		select {
		case r := <-p.out:
			if r.status != http.StatusOK || r.body["status"] != "denied" {
				t.Fatalf("poll answered %d %s", r.status, r.raw)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a long-poll did not learn its outcome")
		}
	}
	if took := time.Since(written); took > 5*time.Second {
		t.Errorf("%d polls answered %s after the writes began", n, took)
	}
}

// TestQRPollLimitSparesTheTokenHolder: the ticket is WeChat's state, so
// anyone who saw the QR code knows it. Their polls, without the poll token,
// must not use up the budget of the browser that holds the token; they are
// limited per address by the general limit instead.
func TestQRPollLimitSparesTheTokenHolder(t *testing.T) {
	t.Run("a flood with a wrong poll token", func(t *testing.T) {
		e := newEnv(t)
		base, w := e.upWeb(nil)
		ticket, token := w.putRecord(t, session.QRRecord{})
		for i := range 30 {
			h := pollHeader(randomToken(t))
			if i%3 == 1 {
				h = map[string]string{"Cookie": "wxlogin_qr_" + ticket + "=" + randomToken(t)}
			} else if i%3 == 2 {
				h = nil
			}
			wantProblem(t, get(t, base+qrURL+"/"+ticket, h), http.StatusNotFound, "qr_ticket_not_found")
		}
		r := get(t, base+qrURL+"/"+ticket, pollHeader(token))
		if r.status != http.StatusOK || r.body["status"] != "pending" {
			t.Fatalf("the token holder's poll after the flood: %d %s", r.status, r.raw)
		}
	})

	t.Run("wrong-token polls spend the address's general limit", func(t *testing.T) {
		e := newEnv(t)
		base, w := e.upWeb(func(c *gatewaysvc.Config) { c.RateLimit = "3/m,burst=3" })
		ticket, token := w.putRecord(t, session.QRRecord{})
		for range 3 {
			wantProblem(t, get(t, base+qrURL+"/"+ticket, pollHeader(randomToken(t))), http.StatusNotFound, "qr_ticket_not_found")
		}
		r := get(t, base+qrURL+"/"+ticket, pollHeader(randomToken(t)))
		wantProblem(t, r, http.StatusTooManyRequests, "rate_limited")
		if n, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || n < 1 {
			t.Errorf("Retry-After %q", r.header.Get("Retry-After"))
		}
		wantProblem(t, get(t, base+qrURL+"/"+randomToken(t), pollHeader(randomToken(t))), http.StatusTooManyRequests, "rate_limited")
		// The token holder, from the same address, is not refused.
		if r := get(t, base+qrURL+"/"+ticket, pollHeader(token)); r.status != http.StatusOK || r.body["status"] != "pending" {
			t.Fatalf("the token holder's poll: %d %s", r.status, r.raw)
		}
	})

	t.Run("the per-ticket limit is per client address", func(t *testing.T) {
		e := newEnv(t)
		base, w := e.upWeb(func(c *gatewaysvc.Config) { c.TrustedProxies = []string{"127.0.0.1/32"} })
		ticket, token := w.putRecord(t, session.QRRecord{})
		from := func(ip string) map[string]string {
			return map[string]string{"X-Poll-Token": token, "X-Forwarded-For": ip}
		}
		limited := false
		for range 20 {
			if r := get(t, base+qrURL+"/"+ticket, from("203.0.113.1")); r.status == http.StatusTooManyRequests {
				limited = true
				break
			}
		}
		if !limited {
			t.Fatal("20 quick polls from one address were never limited")
		}
		if r := get(t, base+qrURL+"/"+ticket, from("203.0.113.2")); r.status != http.StatusOK {
			t.Errorf("a poll from another address: %d %s", r.status, r.raw)
		}
	})
}
