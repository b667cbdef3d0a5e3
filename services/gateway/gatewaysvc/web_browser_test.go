package gatewaysvc_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/wxlogin/wxlogin/shared/api/session"
)

// TestQRCallbackBelongsToTheBrowser: the state is no secret (it is in the
// QR code), so a callback completes or denies a ticket only when it comes
// from the browser that created it, with the ticket's cookie. Any other
// callback exchanges no code and leaves the ticket pending.
func TestQRCallbackBelongsToTheBrowser(t *testing.T) {
	e := newEnv(t)
	base, w := e.upWeb(nil)
	resolves := func() int {
		w.mu.Lock()
		defer w.mu.Unlock()
		return len(w.resolves)
	}
	// create makes a ticket from browser, which keeps the cookie the
	// gateway sets.
	create := func(t *testing.T, browser *http.Client) (ticket, pollToken string) {
		t.Helper()
		r := doWith(t, browser, context.Background(), http.MethodPost, base+qrURL, "application/json", `{}`, nil)
		wantStatus(t, r, http.StatusCreated)
		return r.body["ticket"].(string), r.body["poll_token"].(string)
	}
	wantRefused := func(t *testing.T, r response) {
		t.Helper()
		wantPage(t, r, http.StatusForbidden, "请在显示二维码的浏览器中完成登录")
		for _, want := range []string{"Finish the login in the browser that showed the QR code", "qr_wrong_browser"} {
			if !strings.Contains(r.raw, want) {
				t.Errorf("refusal page lacks %q", want)
			}
		}
	}
	wantPending := func(t *testing.T, ticket, pollToken string) {
		t.Helper()
		r := get(t, base+qrURL+"/"+ticket, pollHeader(pollToken))
		if r.status != http.StatusOK || r.body["status"] != session.QRPending {
			t.Fatalf("poll after a foreign callback: %d %s, want pending", r.status, r.raw)
		}
	}

	victim, attacker := newBrowser(t), newBrowser(t)
	ticket, pollToken := create(t, victim)

	t.Run("another browser's code changes nothing", func(t *testing.T) {
		before := resolves()
		wantRefused(t, callbackFrom(t, attacker, base, url.Values{"code": {"attackers-code"}, "state": {ticket}}))
		if resolves() != before {
			t.Error("the foreign callback's code was exchanged")
		}
		wantPending(t, ticket, pollToken)
	})

	t.Run("the refusal retries once, in the same frame", func(t *testing.T) {
		// WxLogin's iframe with self_redirect reaches the callback from
		// WeChat's site, without the SameSite=Lax cookie; the page's own
		// second try (same-site inside the site's page) has it.
		q := url.Values{"code": {"c"}, "state": {ticket}}
		r := callbackFrom(t, attacker, base, q)
		q.Set("retry", "1")
		want := `<meta http-equiv="refresh" content="0;url=?` + strings.ReplaceAll(q.Encode(), "&", "&amp;") + `">`
		if !strings.Contains(r.raw, want) {
			t.Errorf("first refusal lacks %s:\n%s", want, r.raw)
		}
		r = callbackFrom(t, attacker, base, q)
		wantRefused(t, r)
		if strings.Contains(r.raw, "http-equiv") {
			t.Error("the second refusal retries again: a loop")
		}
		wantPending(t, ticket, pollToken)
	})

	t.Run("another browser cannot deny it", func(t *testing.T) {
		wantRefused(t, callbackFrom(t, attacker, base, url.Values{"state": {ticket}}))
		wantPending(t, ticket, pollToken)
	})

	t.Run("nor can a wrong cookie, or another ticket's", func(t *testing.T) {
		own, _ := create(t, attacker) // the attacker's cookie for their own ticket
		for name, cookie := range map[string]string{
			"wrong value":        "wxlogin_qr_" + ticket + "=" + randomToken(t),
			"another ticket's":   "wxlogin_qr_" + own + "=" + pollToken,
			"the legacy cookie":  "wxlogin_poll=" + pollToken,
			"an oversize cookie": "wxlogin_qr_" + ticket + "=" + strings.Repeat("a", 300),
		} {
			r := do(t, context.Background(), http.MethodGet, base+callbackURL+"?"+url.Values{"code": {"c"}, "state": {ticket}}.Encode(),
				"", "", map[string]string{"Cookie": cookie})
			if r.status != http.StatusForbidden || !strings.Contains(r.raw, "qr_wrong_browser") {
				t.Errorf("%s: %d %s", name, r.status, r.raw)
			}
		}
		wantPending(t, ticket, pollToken)
	})

	t.Run("the creating browser's callback completes it", func(t *testing.T) {
		wantPage(t, callbackFrom(t, victim, base, url.Values{"code": {"victims-code"}, "state": {ticket}}), http.StatusOK, "登录成功")
		// The browser polls with its cookie alone, as a page without the
		// poll token in script would.
		r := doWith(t, victim, context.Background(), http.MethodGet, base+qrURL+"/"+ticket, "", "", nil)
		user, _ := r.body["user"].(map[string]any)
		if r.status != http.StatusOK || r.body["status"] != session.QRConfirmed || user["nickname"] != "Web victims-code" {
			t.Fatalf("poll after the callback: %d %s", r.status, r.raw)
		}
	})

	t.Run("two tabs of one browser finish their own tickets", func(t *testing.T) {
		first, firstToken := create(t, victim)
		second, secondToken := create(t, victim)
		wantPage(t, callbackFrom(t, victim, base, url.Values{"state": {first}}), http.StatusOK, "已取消")
		wantPage(t, callbackFrom(t, victim, base, url.Values{"code": {"tab-2"}, "state": {second}}), http.StatusOK, "登录成功")
		if r := get(t, base+qrURL+"/"+first, pollHeader(firstToken)); r.body["status"] != session.QRDenied {
			t.Errorf("first tab: %d %s", r.status, r.raw)
		}
		if r := get(t, base+qrURL+"/"+second, pollHeader(secondToken)); r.body["status"] != session.QRConfirmed {
			t.Errorf("second tab: %d %s", r.status, r.raw)
		}
	})
}
