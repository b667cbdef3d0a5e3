package fakewechat_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skip2/go-qrcode"

	"github.com/wxlogin/wxlogin/shared/wechat"
	"github.com/wxlogin/wxlogin/shared/wechat/fakewechat"
)

// The website's callback in these tests; it never needs to exist except in
// TestScanAndConfirm, which serves one.
const callback = "https://site.example/api/v1/auth/web/callback"

var (
	qrImage   = regexp.MustCompile(`<img id="qr"[^>]*src="data:image/png;base64,([^"]+)"`)
	phoneLink = regexp.MustCompile(`id="phone-link"[^>]*href="([^"]+)"`)
)

// noRedirect is a client that shows the fake's redirects instead of following them.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

type page struct {
	status int
	header http.Header
	body   string
	uuid   string // the scan session a phone answer was for
}

func fetch(t *testing.T, req *http.Request) page {
	t.Helper()
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return page{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func getPage(t *testing.T, u string) page {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return fetch(t, req)
}

// qrconnect is the URL a website sends the browser to.
func (e *env) qrconnect(redirectURI, state string) string {
	return e.client.QRConnectURL(webID, redirectURI, state)
}

// showQR loads the QR page and returns the phone page's URL from its link.
func showQR(t *testing.T, e *env, redirectURI, state string) string {
	t.Helper()
	p := getPage(t, e.qrconnect(redirectURI, state))
	if p.status != http.StatusOK {
		t.Fatalf("QR page: %d %s", p.status, p.body)
	}
	m := phoneLink.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("QR page has no phone link: %s", p.body)
	}
	return html.UnescapeString(m[1])
}

func uuidOf(t *testing.T, phoneURL string) string {
	t.Helper()
	u, err := url.Parse(phoneURL)
	if err != nil {
		t.Fatal(err)
	}
	id := u.Query().Get("uuid")
	if id == "" {
		t.Fatalf("phone URL %q has no uuid", phoneURL)
	}
	return id
}

func postConfirm(t *testing.T, e *env, form url.Values) page {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+fakewechat.PathQRConfirm, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	p := fetch(t, req)
	p.uuid = form.Get("uuid")
	return p
}

// qrWait is the QR page's long-poll for the phone's answer.
func qrWait(t *testing.T, e *env, uuid string) map[string]any {
	t.Helper()
	p := getPage(t, e.srv.URL+fakewechat.PathQRWait+"?"+url.Values{"uuid": {uuid}}.Encode())
	var b map[string]any
	if p.status != http.StatusOK || json.Unmarshal([]byte(p.body), &b) != nil {
		t.Fatalf("long-poll: %d %s", p.status, p.body)
	}
	return b
}

// redirectTo checks p is the phone's "answered" page (the phone never goes
// to the website) and returns where the QR page's long-poll then sends the
// browser showing the QR code.
func redirectTo(t *testing.T, e *env, p page) *url.URL {
	t.Helper()
	if p.status != http.StatusOK || !strings.Contains(p.body, `id="done"`) {
		t.Fatalf("phone answer %d, want the 200 done page: %s", p.status, p.body)
	}
	if p.header.Get("Location") != "" {
		t.Fatalf("the phone is sent to %q: only the QR page goes to the website", p.header.Get("Location"))
	}
	b := qrWait(t, e, p.uuid)
	raw, _ := b["redirect_uri"].(string)
	u, err := url.Parse(raw)
	if err != nil || raw == "" {
		t.Fatalf("long-poll answer %v has no redirect_uri", b)
	}
	return u
}

func wantExpired(t *testing.T, p page) {
	t.Helper()
	if p.status != http.StatusOK || !strings.Contains(p.body, `id="expired"`) || !strings.Contains(p.body, "二维码已失效") {
		t.Fatalf("got %d, want the 200 'QR code expired' page: %s", p.status, p.body)
	}
}

func TestQRConnectPage(t *testing.T) {
	e := newEnv(t)
	p := getPage(t, e.qrconnect(callback, "state1"))

	t.Run("a frameable HTML page", func(t *testing.T) {
		if p.status != http.StatusOK || p.header.Get("Content-Type") != "text/html; charset=utf-8" {
			t.Fatalf("status %d, content type %q", p.status, p.header.Get("Content-Type"))
		}
		if v := p.header.Get("X-Frame-Options"); v != "" {
			t.Errorf("X-Frame-Options %q forbids the iframe websites show it in", v)
		}
		if csp := p.header.Get("Content-Security-Policy"); strings.Contains(csp, "frame-ancestors") {
			t.Errorf("CSP %q restricts framing", csp)
		}
		if p.header.Get("Cache-Control") != "no-store" {
			t.Errorf("Cache-Control %q: each load must be a new QR code", p.header.Get("Cache-Control"))
		}
		for _, want := range []string{"使用微信扫一扫登录", "Scan with WeChat", `alt="WeChat QR code"`, webID} {
			if !strings.Contains(p.body, want) {
				t.Errorf("page lacks %q", want)
			}
		}
		// Self-contained: nothing loaded from elsewhere.
		for _, bad := range []string{"<script src", "<link", "@import", "url("} {
			if strings.Contains(p.body, bad) {
				t.Errorf("page loads an external asset (%q)", bad)
			}
		}
	})

	t.Run("the QR code encodes the phone link", func(t *testing.T) {
		m := qrImage.FindStringSubmatch(p.body)
		if m == nil {
			t.Fatalf("no <img id=qr> with a PNG data URI: %s", p.body)
		}
		pngBytes, err := base64.StdEncoding.DecodeString(html.UnescapeString(m[1]))
		if err != nil {
			t.Fatalf("data URI is not base64: %v", err)
		}
		img, err := png.Decode(bytes.NewReader(pngBytes))
		if err != nil {
			t.Fatalf("QR image is not a PNG: %v", err)
		}
		if b := img.Bounds(); b.Dx() != b.Dy() || b.Dx() < 100 {
			t.Errorf("QR image is %v", b)
		}
		link := phoneLink.FindStringSubmatch(p.body)
		if link == nil {
			t.Fatal("no phone link")
		}
		phone := html.UnescapeString(link[1])
		if !strings.HasPrefix(phone, e.srv.URL+fakewechat.PathQRConfirm+"?uuid=") {
			t.Fatalf("phone link %q is not this fake's phone page", phone)
		}
		// go-qrcode is deterministic: the same text gives the same PNG.
		want, err := qrcode.Encode(phone, qrcode.Medium, img.Bounds().Dx())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(pngBytes, want) {
			t.Error("the QR code does not encode the phone link")
		}
	})

	t.Run("each load is a new QR code", func(t *testing.T) {
		a, b := showQR(t, e, callback, "s"), showQR(t, e, callback, "s")
		if uuidOf(t, a) == uuidOf(t, b) {
			t.Error("two loads share a scan session")
		}
	})

	t.Run("the phone link's base", func(t *testing.T) {
		tests := []struct {
			name      string
			publicURL string
			header    http.Header
			want      string
		}{
			{"from the request", "", nil, "http://wx.test" + fakewechat.PathQRConfirm + "?uuid="},
			{"behind TLS termination", "", http.Header{"X-Forwarded-Proto": {"https"}}, "https://wx.test" + fakewechat.PathQRConfirm + "?uuid="},
			{"PublicURL", "https://open.example/fake/", http.Header{"X-Forwarded-Proto": {"https"}},
				"https://open.example/fake" + fakewechat.PathQRConfirm + "?uuid="},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				fake := fakewechat.New(fakewechat.Options{PublicURL: tt.publicURL})
				req := httptest.NewRequest(http.MethodGet, e.qrconnect(callback, "s"), nil)
				req.Host = "wx.test"
				for k, v := range tt.header {
					req.Header[k] = v
				}
				rec := httptest.NewRecorder()
				fake.ServeHTTP(rec, req)
				m := phoneLink.FindStringSubmatch(rec.Body.String())
				if m == nil || !strings.HasPrefix(html.UnescapeString(m[1]), tt.want) {
					t.Fatalf("phone link %q, want it to start with %q", m, tt.want)
				}
			})
		}
	})

	t.Run("style=white", func(t *testing.T) {
		u, _ := url.Parse(e.qrconnect(callback, "s"))
		q := u.Query()
		q.Set("style", "white")
		u.RawQuery, u.Fragment = q.Encode(), ""
		p := getPage(t, u.String())
		if !strings.Contains(p.body, `<body class="white">`) {
			t.Error("style=white is not applied")
		}
	})

	t.Run("GET and HEAD only", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, e.qrconnect(callback, "s"), nil)
		if p := fetch(t, req); p.status != http.StatusMethodNotAllowed {
			t.Errorf("POST: %d", p.status)
		}
	})
}

func TestPublicURLValidation(t *testing.T) {
	for _, bad := range []string{"wx.example", "ftp://wx.example", "https://wx.example/?a=1", "https://u:p@wx.example"} {
		if fakewechat.ValidatePublicURL(bad) == nil {
			t.Errorf("ValidatePublicURL(%q) accepted it", bad)
		}
	}
	for _, good := range []string{"", "http://192.168.1.20:9090", "https://open.example/fake/"} {
		if err := fakewechat.ValidatePublicURL(good); err != nil {
			t.Errorf("ValidatePublicURL(%q) = %v", good, err)
		}
	}
}

func TestQRConnectErrors(t *testing.T) {
	e := newEnv(t)
	valid := url.Values{"appid": {webID}, "redirect_uri": {callback}, "response_type": {"code"},
		"scope": {"snsapi_login"}, "state": {"s"}}
	tests := []struct {
		name   string
		change func(q url.Values)
		want   string // on the error page
	}{
		{"unknown appid", func(q url.Values) { q.Set("appid", "wx0000000000000000") }, "参数错误"},
		{"no appid", func(q url.Values) { q.Del("appid") }, "参数错误"},
		{"a mini-program appid", func(q url.Values) { q.Set("appid", miniID) }, "参数错误"},
		{"no redirect_uri", func(q url.Values) { q.Del("redirect_uri") }, "redirect_uri 参数错误"},
		{"relative redirect_uri", func(q url.Values) { q.Set("redirect_uri", "/api/v1/auth/web/callback") }, "redirect_uri 参数错误"},
		{"javascript: redirect_uri", func(q url.Values) { q.Set("redirect_uri", "javascript:alert(1)") }, "redirect_uri 参数错误"},
		{"scope snsapi_userinfo", func(q url.Values) { q.Set("scope", "snsapi_userinfo") }, "Scope 参数错误或没有 Scope 权限"},
		{"no scope", func(q url.Values) { q.Del("scope") }, "Scope 参数错误或没有 Scope 权限"},
		{"response_type token", func(q url.Values) { q.Set("response_type", "token") }, "参数错误"},
		{"state too long", func(q url.Values) { q.Set("state", strings.Repeat("a", 129)) }, "参数错误"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := url.Values{}
			for k, v := range valid {
				q[k] = append([]string(nil), v...)
			}
			tt.change(q)
			p := getPage(t, e.srv.URL+fakewechat.PathQRConnect+"?"+q.Encode())
			if p.status != http.StatusOK {
				t.Errorf("status %d, want 200 like WeChat's error pages", p.status)
			}
			if !strings.Contains(p.body, `id="error"`) || !strings.Contains(p.body, tt.want) {
				t.Errorf("page does not say %q: %s", tt.want, p.body)
			}
			if strings.Contains(p.body, `id="qr"`) || strings.Contains(p.body, "phone-link") {
				t.Error("an error page shows a QR code")
			}
		})
	}

	t.Run("a 128-byte state is fine", func(t *testing.T) {
		showQR(t, e, callback, strings.Repeat("a", 128))
	})
}

func TestConfirmAllow(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const state = "Tk-3_xYz"
	phone := showQR(t, e, callback+"?from=qr", state)

	p := getPage(t, phone)
	if p.status != http.StatusOK {
		t.Fatalf("phone page: %d", p.status)
	}
	for _, want := range []string{`id="nickname" name="nickname"`, `id="openid" name="openid"`, `id="unionid" name="unionid"`,
		`id="headimgurl" name="headimgurl"`, `<button id="allow" type="submit" name="action" value="allow">允许 / Allow</button>`,
		`<button id="deny" type="submit" name="action" value="deny"`, webID, "site.example", `name="viewport"`} {
		if !strings.Contains(p.body, want) {
			t.Errorf("phone page lacks %q", want)
		}
	}

	loc := redirectTo(t, e, postConfirm(t, e, url.Values{"uuid": {uuidOf(t, phone)}, "action": {"allow"},
		"nickname": {"Alice 爱丽丝"}, "openid": {"oAliceQR"}, "unionid": {"uAliceQR"},
		"headimgurl": {"https://thirdwx.qlogo.cn/alice/132"}}))
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != callback {
		t.Errorf("redirect to %q, want %q", got, callback)
	}
	if !strings.HasPrefix(loc.RawQuery, "from=qr&") {
		t.Errorf("query %q does not keep the redirect_uri's own query first", loc.RawQuery)
	}
	q := loc.Query()
	code := q.Get("code")
	if code == "" || q.Get("state") != state || q.Get("from") != "qr" {
		t.Fatalf("redirect query %v, want code, state %q and from=qr", q, state)
	}

	tok, err := e.client.OAuthAccessToken(ctx, webID, webSecret, code)
	if err != nil {
		t.Fatalf("the code does not work: %v", err)
	}
	info, err := e.client.UserInfo(ctx, tok.AccessToken, tok.OpenID)
	if err != nil {
		t.Fatal(err)
	}
	want := wechat.UserInfo{OpenID: "oAliceQR", UnionID: "uAliceQR", Nickname: "Alice 爱丽丝",
		HeadImgURL: "https://thirdwx.qlogo.cn/alice/132"}
	if info != want {
		t.Errorf("userinfo = %+v, want %+v", info, want)
	}
	if _, err := e.client.OAuthAccessToken(ctx, webID, webSecret, code); wechat.ErrCode(err) != 40163 {
		t.Errorf("second exchange: %v, want 40163", err)
	}
}

func TestConfirmNewUsers(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	openids := map[string]bool{}
	for range 2 {
		phone := showQR(t, e, callback, "s")
		loc := redirectTo(t, e, postConfirm(t, e, url.Values{"uuid": {uuidOf(t, phone)}, "action": {"allow"},
			"nickname": {""}, "openid": {""}}))
		tok, err := e.client.OAuthAccessToken(ctx, webID, webSecret, loc.Query().Get("code"))
		if err != nil {
			t.Fatal(err)
		}
		info, err := e.client.UserInfo(ctx, tok.AccessToken, tok.OpenID)
		if err != nil {
			t.Fatal(err)
		}
		if len(info.OpenID) != 28 || info.OpenID[0] != 'o' || info.Nickname != "微信用户" || info.UnionID != "" {
			t.Errorf("new user %+v, want a random openid, nickname 微信用户 and no unionid", info)
		}
		openids[info.OpenID] = true
	}
	if len(openids) != 2 {
		t.Error("an empty form twice gave the same user")
	}

	t.Run("a known user keeps the nickname when none is typed", func(t *testing.T) {
		e.mint(t, webID, fakewechat.User{OpenID: "oKeepName", Nickname: "Kept"})
		phone := showQR(t, e, callback, "s")
		loc := redirectTo(t, e, postConfirm(t, e, url.Values{"uuid": {uuidOf(t, phone)}, "action": {"allow"}, "openid": {"oKeepName"}}))
		tok, err := e.client.OAuthAccessToken(ctx, webID, webSecret, loc.Query().Get("code"))
		if err != nil {
			t.Fatal(err)
		}
		if info, err := e.client.UserInfo(ctx, tok.AccessToken, tok.OpenID); err != nil || info.Nickname != "Kept" {
			t.Errorf("userinfo %+v, %v; want nickname Kept", info, err)
		}
	})
}

func TestConfirmDeny(t *testing.T) {
	e := newEnv(t)
	phone := showQR(t, e, callback+"?from=qr", "deny-state")
	p := postConfirm(t, e, url.Values{"uuid": {uuidOf(t, phone)}, "action": {"deny"}, "nickname": {"ignored"}})
	loc := redirectTo(t, e, p)
	if got, want := loc.String(), callback+"?from=qr&state=deny-state"; got != want {
		t.Errorf("deny redirects to %q, want %q", got, want)
	}
	// Deny does not even need valid profile fields: they are ignored.
	phone = showQR(t, e, callback, "s2")
	loc = redirectTo(t, e, postConfirm(t, e, url.Values{"uuid": {uuidOf(t, phone)}, "action": {"deny"},
		"headimgurl": {"not a url"}}))
	if loc.Query().Has("code") {
		t.Error("deny carries a code")
	}
}

func TestScanSingleUse(t *testing.T) {
	tests := []struct {
		name          string
		first, second string
	}{
		{"allow then allow", "allow", "allow"},
		{"allow then deny", "allow", "deny"},
		{"deny then allow", "deny", "allow"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			phone := showQR(t, e, callback, "s")
			redirectTo(t, e, postConfirm(t, e, url.Values{"uuid": {uuidOf(t, phone)}, "action": {tt.first}}))
			wantExpired(t, postConfirm(t, e, url.Values{"uuid": {uuidOf(t, phone)}, "action": {tt.second}}))
			wantExpired(t, getPage(t, phone))
		})
	}

	t.Run("concurrent answers: exactly one wins", func(t *testing.T) {
		e := newEnv(t)
		phone := showQR(t, e, callback, "s")
		const n = 20
		var wg sync.WaitGroup
		statuses := make(chan int, n)
		for i := range n {
			action := "allow"
			if i%2 == 1 {
				action = "deny"
			}
			wg.Go(func() {
				p := postConfirm(t, e, url.Values{"uuid": {uuidOf(t, phone)}, "action": {action}})
				if p.status != http.StatusOK {
					statuses <- p.status
				} else if strings.Contains(p.body, `id="done"`) {
					statuses <- http.StatusFound // counted as the one answer
				} else {
					statuses <- http.StatusOK // the expired page
				}
			})
		}
		wg.Wait()
		close(statuses)
		redirects := 0
		for s := range statuses {
			switch s {
			case http.StatusFound:
				redirects++
			case http.StatusOK:
			default:
				t.Errorf("status %d", s)
			}
		}
		if redirects != 1 {
			t.Errorf("%d answers redirected, want 1", redirects)
		}
	})

	t.Run("unknown uuid", func(t *testing.T) {
		e := newEnv(t)
		wantExpired(t, getPage(t, e.srv.URL+fakewechat.PathQRConfirm+"?uuid=nosuchscan"))
		wantExpired(t, getPage(t, e.srv.URL+fakewechat.PathQRConfirm))
		wantExpired(t, postConfirm(t, e, url.Values{"uuid": {"nosuchscan"}, "action": {"allow"}}))
	})
}

func TestScanExpiry(t *testing.T) {
	tests := []struct {
		name    string
		advance time.Duration
		live    bool
	}{
		{"just before 5 minutes", 5*time.Minute - time.Second, true},
		{"at 5 minutes", 5 * time.Minute, false},
		{"long after", time.Hour, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			phone := showQR(t, e, callback, "s")
			e.fake.Advance(tt.advance)
			p := getPage(t, phone)
			post := postConfirm(t, e, url.Values{"uuid": {uuidOf(t, phone)}, "action": {"allow"}})
			if tt.live {
				if p.status != http.StatusOK || !strings.Contains(p.body, `id="allow"`) {
					t.Errorf("phone page %d: %s", p.status, p.body)
				}
				redirectTo(t, e, post)
				return
			}
			wantExpired(t, p)
			wantExpired(t, post)
		})
	}
}

func TestConfirmBadInput(t *testing.T) {
	e := newEnv(t)
	e.mint(t, webID, fakewechat.User{OpenID: "oOwner", UnionID: "uTaken"})
	tests := []struct {
		name   string
		form   func(uuid string) url.Values
		status int
	}{
		{"no uuid", func(string) url.Values { return url.Values{"action": {"allow"}} }, 400},
		{"no action", func(id string) url.Values { return url.Values{"uuid": {id}} }, 400},
		{"unknown action", func(id string) url.Values { return url.Values{"uuid": {id}, "action": {"maybe"}} }, 400},
		{"action twice", func(id string) url.Values { return url.Values{"uuid": {id}, "action": {"deny", "allow"}} }, 400},
		{"nickname too long", func(id string) url.Values {
			return url.Values{"uuid": {id}, "action": {"allow"}, "nickname": {strings.Repeat("名", 400)}}
		}, 400},
		{"control character", func(id string) url.Values {
			return url.Values{"uuid": {id}, "action": {"allow"}, "nickname": {"a\x00b"}}
		}, 400},
		{"openid with a space", func(id string) url.Values {
			return url.Values{"uuid": {id}, "action": {"allow"}, "openid": {"o Alice"}}
		}, 400},
		{"headimgurl not a URL", func(id string) url.Values {
			return url.Values{"uuid": {id}, "action": {"allow"}, "headimgurl": {"javascript:alert(1)"}}
		}, 400},
		{"unionid of another user", func(id string) url.Values {
			return url.Values{"uuid": {id}, "action": {"allow"}, "openid": {"oSomeoneElse"}, "unionid": {"uTaken"}}
		}, 400},
		{"form over 16 KiB", func(id string) url.Values {
			return url.Values{"uuid": {id}, "action": {"allow"}, "pad": {strings.Repeat("x", 16<<10)}}
		}, 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			phone := showQR(t, e, callback, "s")
			id := uuidOf(t, phone)
			p := postConfirm(t, e, tt.form(id))
			if p.status != tt.status || !strings.Contains(p.body, `id="error"`) {
				t.Fatalf("got %d, want %d and an error page: %s", p.status, tt.status, p.body)
			}
			// A mistake does not burn the QR code.
			redirectTo(t, e, postConfirm(t, e, url.Values{"uuid": {id}, "action": {"allow"}}))
		})
	}

	t.Run("not a form", func(t *testing.T) {
		phone := showQR(t, e, callback, "s")
		req, _ := http.NewRequest(http.MethodPost, e.srv.URL+fakewechat.PathQRConfirm,
			strings.NewReader(`{"uuid":"`+uuidOf(t, phone)+`","action":"allow"}`))
		req.Header.Set("Content-Type", "application/json")
		if p := fetch(t, req); p.status != http.StatusBadRequest {
			t.Errorf("JSON body: %d", p.status)
		}
	})

	t.Run("other methods", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPut, e.srv.URL+fakewechat.PathQRConfirm, nil)
		if p := fetch(t, req); p.status != http.StatusMethodNotAllowed {
			t.Errorf("PUT: %d", p.status)
		}
	})
}

func TestPhonePageKnownUsers(t *testing.T) {
	e := newEnv(t)
	e.mint(t, webID, fakewechat.User{OpenID: "oKate", UnionID: "uKate", Nickname: "Known Kate", HeadImgURL: "https://a.example/k.png"})
	e.mint(t, webID, fakewechat.User{OpenID: "oEvil", Nickname: `<script>alert("x")</script>`})
	e.mint(t, miniID, fakewechat.User{OpenID: "oMiniMax", Nickname: "Mini Max"})
	phone := showQR(t, e, callback, "s")

	p := getPage(t, phone)
	if !strings.Contains(p.body, `id="known-users"`) || !strings.Contains(p.body, "Known Kate") {
		t.Fatalf("phone page does not offer the app's users: %s", p.body)
	}
	if strings.Contains(p.body, "Mini Max") {
		t.Error("phone page offers another app's user")
	}
	if strings.Contains(p.body, "<script>alert") {
		t.Error("a nickname is not HTML-escaped")
	}
	// Newest first.
	if strings.Index(p.body, "oEvil") > strings.Index(p.body, "oKate") {
		t.Error("users are not listed newest first")
	}

	m := regexp.MustCompile(`<a class="known-user" href="([^"]+)">Known Kate`).FindStringSubmatch(p.body)
	if m == nil {
		t.Fatal("no shortcut for Known Kate")
	}
	base, _ := url.Parse(phone)
	ref, err := url.Parse(html.UnescapeString(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	filled := getPage(t, base.ResolveReference(ref).String())
	for _, want := range []string{`value="Known Kate"`, `value="oKate"`, `value="uKate"`, `value="https://a.example/k.png"`} {
		if !strings.Contains(filled.body, want) {
			t.Errorf("the shortcut does not fill %s", want)
		}
	}
	// The filled page still posts to the same scan session.
	if !strings.Contains(filled.body, `name="uuid" value="`+uuidOf(t, phone)+`"`) {
		t.Error("the filled form lost the uuid")
	}
}

func TestScanAndConfirm(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()

	// A website's callback, to show the answer is a URL a test can GET.
	type hit struct{ code, state string }
	hits := make(chan hit, 1)
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits <- hit{r.URL.Query().Get("code"), r.URL.Query().Get("state")}
	}))
	t.Cleanup(site.Close)

	t.Run("allow", func(t *testing.T) {
		redirect, err := e.fake.ScanAndConfirm(e.qrconnect(site.URL+"/cb", "st8"),
			fakewechat.User{OpenID: "oScan", Nickname: "Scanner"}, true)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Get(redirect)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		h := <-hits
		if h.code == "" || h.state != "st8" {
			t.Fatalf("callback got %+v", h)
		}
		tok, err := e.client.OAuthAccessToken(ctx, webID, webSecret, h.code)
		if err != nil {
			t.Fatal(err)
		}
		if info, err := e.client.UserInfo(ctx, tok.AccessToken, tok.OpenID); err != nil || info.OpenID != "oScan" || info.Nickname != "Scanner" {
			t.Errorf("userinfo %+v, %v", info, err)
		}
	})

	t.Run("deny", func(t *testing.T) {
		redirect, err := e.fake.ScanAndConfirm(e.qrconnect(callback, "st9"), fakewechat.User{}, false)
		if err != nil {
			t.Fatal(err)
		}
		if redirect != callback+"?state=st9" {
			t.Errorf("deny redirect %q", redirect)
		}
	})

	tests := []struct {
		name string
		url  string
		user fakewechat.User
		want error
	}{
		{"unknown appid", wechat.New(wechat.Options{OpenBase: e.srv.URL}).QRConnectURL("wx0000000000000000", callback, "s"), fakewechat.User{}, fakewechat.ErrUnknownApp},
		{"a mini-program appid", e.client.QRConnectURL(miniID, callback, "s"), fakewechat.User{}, fakewechat.ErrWrongKind},
		{"bad scope", strings.Replace(e.qrconnect(callback, "s"), "snsapi_login", "snsapi_base", 1), fakewechat.User{}, fakewechat.ErrBadInput},
		{"not a qrconnect URL", e.srv.URL + "/connect/oauth2/authorize?appid=" + webID, fakewechat.User{}, fakewechat.ErrBadInput},
		{"bad user", e.qrconnect(callback, "s"), fakewechat.User{Sex: 7}, fakewechat.ErrBadInput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := e.fake.ScanAndConfirm(tt.url, tt.user, true); !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestQRLogsHoldNoSecrets: the scan id lets anyone answer for the user, and
// the code and state are secrets of the website; none is logged.
func TestQRLogsHoldNoSecrets(t *testing.T) {
	e := newEnv(t)
	const state = "StateSecret0123456789"
	phone := showQR(t, e, callback, state)
	id := uuidOf(t, phone)
	getPage(t, phone)
	postConfirm(t, e, url.Values{"uuid": {id}, "action": {"nope"}})
	loc := redirectTo(t, e, postConfirm(t, e, url.Values{"uuid": {id}, "action": {"allow"}}))
	redirect, err := e.fake.ScanAndConfirm(e.qrconnect(callback, state), fakewechat.User{}, true)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(redirect)

	logs := e.logs.String()
	if !strings.Contains(logs, "qr login answered") {
		t.Fatalf("the fake logged nothing about the QR login: %s", logs)
	}
	for _, s := range []string{id, state, loc.Query().Get("code"), u.Query().Get("code")} {
		if strings.Contains(logs, s) {
			t.Errorf("log output contains a secret (%.6s…)", s)
		}
	}
}

// TestQRPageGoesToTheWebsite: as on WeChat, the page showing the QR code
// (not the phone) navigates to the callback once the phone answers: it
// long-polls, and then goes itself or sends the top window (WxLogin's
// iframe without self_redirect).
func TestQRPageGoesToTheWebsite(t *testing.T) {
	e := newEnv(t)

	t.Run("which window the page sends", func(t *testing.T) {
		for _, tt := range []struct {
			name, extra string
			top         bool
		}{
			{"top page", "", false},
			{"WxLogin iframe, self_redirect true", "&login_type=jssdk&self_redirect=true", false},
			{"WxLogin iframe, self_redirect default", "&login_type=jssdk&self_redirect=default", true},
			{"WxLogin iframe, no self_redirect", "&login_type=jssdk", true},
		} {
			u := strings.TrimSuffix(e.qrconnect(callback, "s"), "#wechat_redirect") + tt.extra
			p := getPage(t, u)
			want := `data-top="` + strconv.FormatBool(tt.top) + `"`
			if p.status != http.StatusOK || !strings.Contains(p.body, want) || !strings.Contains(p.body, "<script>") {
				t.Errorf("%s: want %s and the script: %d %s", tt.name, want, p.status, p.body)
			}
			if csp := p.header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'sha256-") || !strings.Contains(csp, "connect-src 'self'") {
				t.Errorf("%s: CSP %q does not allow the page's script and its long-poll", tt.name, csp)
			}
		}
	})

	t.Run("the long-poll answers when the phone does, once", func(t *testing.T) {
		phone := showQR(t, e, callback, "lp-state")
		id := uuidOf(t, phone)
		got := make(chan map[string]any, 1)
		go func() {
			resp, err := http.Get(e.srv.URL + fakewechat.PathQRWait + "?uuid=" + id)
			if err != nil {
				got <- map[string]any{"error": err.Error()}
				return
			}
			defer resp.Body.Close()
			var b map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&b)
			got <- b
		}()
		p := postConfirm(t, e, url.Values{"uuid": {id}, "action": {"allow"}, "nickname": {"LP"}})
		if p.status != http.StatusOK || !strings.Contains(p.body, `id="done"`) || p.header.Get("Location") != "" {
			t.Fatalf("phone answer: %d %v %s", p.status, p.header, p.body)
		}
		select {
		case b := <-got:
			raw, _ := b["redirect_uri"].(string)
			u, err := url.Parse(raw)
			if b["wx_errcode"] != float64(405) || err != nil || u.Query().Get("state") != "lp-state" || u.Query().Get("code") == "" {
				t.Fatalf("long-poll answer %v", b)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the long-poll did not answer after the phone allowed")
		}
		if b := qrWait(t, e, id); b["wx_errcode"] != float64(402) {
			t.Errorf("after the answer was taken: %v, want 402", b)
		}
	})

	t.Run("a denial sends the page to the callback without a code", func(t *testing.T) {
		phone := showQR(t, e, callback, "deny-lp")
		loc := redirectTo(t, e, postConfirm(t, e, url.Values{"uuid": {uuidOf(t, phone)}, "action": {"deny"}}))
		if loc.Query().Has("code") || loc.Query().Get("state") != "deny-lp" {
			t.Errorf("deny goes to %s", loc)
		}
	})

	t.Run("unknown uuid", func(t *testing.T) {
		if b := qrWait(t, e, "nosuchscan"); b["wx_errcode"] != float64(402) {
			t.Errorf("unknown uuid: %v, want 402", b)
		}
	})
}
