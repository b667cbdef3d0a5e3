package gatewaysvc_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/session"
)

// TestQRNotBound: with auto-register off, identity answers the callback's
// code with wechat_not_bound and a bind token. The ticket then carries the
// bind token to the browser holding the poll token (and to nobody else),
// which registers or binds an account with it.
func TestQRNotBound(t *testing.T) {
	e := newEnv(t)
	base, w := e.upWeb(nil)
	const bindToken = "bt-qr-0123456789abcdef"
	w.set(func(w *webStub) {
		w.resolveFail = &api.Error{Code: api.CodeWechatNotBound, Message: "bind or register first", Data: map[string]string{
			"bind_token": bindToken, "nickname": "微信小李", "avatar_url": "https://thirdwx.qlogo.cn/mmopen/li/132"}}
	})
	poll := func(t *testing.T, ticket string, h map[string]string) response {
		t.Helper()
		return get(t, base+qrURL+"/"+ticket, h)
	}

	t.Run("the callback records the bind token and says the account is not linked", func(t *testing.T) {
		ticket, token := w.putRecord(t, session.QRRecord{})
		r := w.callback(t, url.Values{"code": {"new-wechat-user"}, "state": {ticket}})
		wantPage(t, r, http.StatusOK, "微信账号尚未关联")
		for _, want := range []string{"WeChat account not linked yet", `data-status="not_bound"`} {
			if !strings.Contains(r.raw, want) {
				t.Errorf("page lacks %q", want)
			}
		}
		if strings.Contains(r.raw, bindToken) {
			t.Error("the callback page shows the bind token: only the poller may have it")
		}
		rec, _ := w.record(t, ticket)
		if rec.Status != session.QRNotBound || rec.BindToken != bindToken || rec.User != nil || rec.Nickname != "微信小李" {
			t.Fatalf("record %+v, want not_bound with the bind token", rec)
		}

		// The poller with the poll token gets the bind token ...
		b := wantProblem(t, poll(t, ticket, pollHeader(token)), http.StatusForbidden, "wechat_not_bound")
		if b["bind_token"] != bindToken {
			t.Errorf("bind_token %v, want %q", b["bind_token"], bindToken)
		}
		// ... and whose WeChat it is, to see before binding it.
		if b["nickname"] != "微信小李" || b["avatar_url"] != "https://thirdwx.qlogo.cn/mmopen/li/132" {
			t.Errorf("not_bound answer %v: want the WeChat nickname and avatar", b)
		}
		// ... a poll without it gets nothing.
		r = poll(t, ticket, pollHeader(randomToken(t)))
		wantProblem(t, r, http.StatusNotFound, "qr_ticket_not_found")
		if strings.Contains(r.raw, bindToken) {
			t.Error("a wrong poll token got the bind token")
		}
		// WeChat calling again changes nothing and exchanges nothing.
		w.mu.Lock()
		resolved := len(w.resolves)
		w.mu.Unlock()
		wantPage(t, w.callback(t, url.Values{"code": {"new-wechat-user"}, "state": {ticket}}), http.StatusOK, "微信账号尚未关联")
		w.mu.Lock()
		again := len(w.resolves)
		w.mu.Unlock()
		if again != resolved {
			t.Errorf("the code was exchanged again")
		}
		if strings.Contains(e.logs.String(), bindToken) {
			t.Error("the bind token is in the logs")
		}
	})

	t.Run("a waiting long-poll learns it", func(t *testing.T) {
		ticket, token := w.putRecord(t, session.QRRecord{})
		waiting := longPoll(t, e, base, ticket, token)
		wantPage(t, w.callback(t, url.Values{"code": {"c"}, "state": {ticket}}), http.StatusOK, "微信账号尚未关联")
		select {
		case r := <-waiting:
			if r.status != http.StatusForbidden || r.body["code"] != "wechat_not_bound" || r.body["bind_token"] != bindToken {
				t.Fatalf("long-poll answer %d %s", r.status, r.raw)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("the long-poll did not answer")
		}
	})

	t.Run("without a bind token it is a denial, as before", func(t *testing.T) {
		w.set(func(w *webStub) { w.resolveFail = api.Errorf(api.CodeWechatNotBound, "bind or register first") })
		ticket, token := w.putRecord(t, session.QRRecord{})
		wantPage(t, w.callback(t, url.Values{"code": {"c"}, "state": {ticket}}), http.StatusForbidden, "wechat_not_bound")
		r := poll(t, ticket, pollHeader(token))
		if r.status != http.StatusOK || r.body["status"] != "denied" || r.body["reason"] != "wechat_not_bound" {
			t.Fatalf("poll: %d %s", r.status, r.raw)
		}
	})
}
