package httpapi

import (
	"net/http"
	"net/url"
	"testing"
)

// FuzzCallbackQuery: any query on the QR callback either yields a state
// that looks like a ticket and a code within limits (both the first values
// sent, and the same again when re-encoded), or a 404/400 page, never a
// 5xx; nothing malformed reaches a KV lookup or WeChat.
func FuzzCallbackQuery(f *testing.F) {
	for _, s := range []string{
		"code=061abcDEF&state=AAAAAAAAAAAAAAAAAAAAAA",
		"state=AAAAAAAAAAAAAAAAAAAAAA",
		"state=AAAAAAAAAAAAAAAAAAAAAA&code=",
		"state=AAAAAAAAAAAAAAAAAAAAAA&state=short&code=c",
		"state=short&code=c",
		"state=AAAAAAAAAAAAAAAAAAAA%2FA&code=c",
		"state=AAAAAAAAAAAAAAAAAAAAAA&code=a%20b",
		"state=AAAAAAAAAAAAAAAAAAAAAA&code=%E4%BD%A0",
		"state=AAAAAAAAAAAAAAAAAAAAAA;code=c",
		"state=%zz",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rawQuery string) {
		q, _ := url.ParseQuery(rawQuery) // as url.URL.Query reads it
		state, code, status, bad := callbackQuery(q)
		if bad != nil {
			if status != http.StatusNotFound && status != http.StatusBadRequest {
				t.Fatalf("%q: status %d, want 404 or 400", rawQuery, status)
			}
			if state != "" || code != "" {
				t.Fatalf("%q: rejected but state %q, code %q", rawQuery, state, code)
			}
			return
		}
		if status != http.StatusOK || !validTicket(state) || len(state) > maxTicketLen ||
			len(code) > maxCodeBytes || !isVisibleASCII(code) {
			t.Fatalf("%q: accepted state %q, code %q (status %d)", rawQuery, state, code, status)
		}
		if state != q.Get("state") || code != q.Get("code") {
			t.Fatalf("%q: state %q, code %q are not the first values sent", rawQuery, state, code)
		}
		again := url.Values{"state": {state}, "code": {code}}.Encode()
		q2, err := url.ParseQuery(again)
		if err != nil {
			t.Fatal(err)
		}
		s2, c2, st2, bad2 := callbackQuery(q2)
		if bad2 != nil || s2 != state || c2 != code || st2 != status {
			t.Fatalf("re-encoded %q reads as %q, %q, %d, %v", again, s2, c2, st2, bad2)
		}
	})
}
