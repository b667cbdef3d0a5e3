package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestWebClient runs the browser client's Node tests (clients/web/test):
// the unit tests on stand-ins, and live.test.js against this stack, whose
// access tokens last 2 seconds, so that its refreshes are the gateway's.
func TestWebClient(t *testing.T) {
	t.Setenv("WXLOGIN_ACCESS_TTL", "2s")
	st := startStack(t)
	runNodeTests(t, "clients/web/test",
		"WXLOGIN_TEST_GATEWAY_URL="+st.GatewayURL,
		"WXLOGIN_TEST_FAKEWECHAT_URL="+st.FakeURL,
		"WXLOGIN_TEST_MINIPROGRAM_APPID="+devMiniProgramAppID)
}

// TestWebClientTwoTabsInBrowser: two tabs of the demo share one login
// (localStorage, and IndexedDB for the refresh lock). Once the access token
// has expired, both call GET /api/v1/me at once: both calls succeed, and of
// the two tabs exactly one refreshes (the Web Locks API and a re-read of
// IndexedDB, which unlike localStorage never lags behind the other tab's
// write), so the refresh token is never spent twice, which would end the
// session.
func TestWebClientTwoTabsInBrowser(t *testing.T) {
	browser := newBrowser(t)
	t.Setenv("WXLOGIN_ACCESS_TTL", "3s")
	st := startCrossSiteStack(t)

	first := newTab(t, browser)
	firstTraffic := recordTraffic(t, first)
	act(t, first, "open the demo", chromedp.Navigate(st.GatewayURL+"/demo"))
	answerOnPhone(t, browser, phoneURL(t, qrFrame(t, first)), "Two Tabs Tess", true)
	act(t, first, "logged in", chromedp.WaitVisible(chromedp.CSS(`#user-nickname`)))

	// The second tab of the same profile is logged in from storage.
	second := newTab(t, browser)
	secondTraffic := recordTraffic(t, second)
	act(t, second, "open the demo in a second tab", chromedp.Navigate(st.GatewayURL+"/demo"), chromedp.WaitVisible(chromedp.CSS(`#user-nickname`)))
	if got := text(t, second, `#user-nickname`); got != "Two Tabs Tess" {
		t.Fatalf("second tab shows %q, want the first tab's login", got)
	}

	// stored reads the tokens the tab's storage holds.
	stored := func(tab context.Context) (access, refresh string) {
		t.Helper()
		v, err := chromedp.Run(tab, chromedp.Evaluate[[]string](`(() => { const t = JSON.parse(localStorage.getItem('wxlogin')); return t ? [t.access_token, t.refresh_token] : ['', ''] })()`))
		if err != nil || len(v) != 2 {
			t.Fatalf("read the stored tokens: %v %v", v, err)
		}
		return v[0], v[1]
	}
	// shared reads the access token of the record the refresh lock goes by
	// (IndexedDB): "null" once logged out.
	shared := func(tab context.Context) string {
		t.Helper()
		v, err := chromedp.Run(tab, chromedp.Evaluate[string](`new Promise((resolve, reject) => {
			const open = indexedDB.open('wxlogin', 1)
			open.onerror = () => reject(open.error)
			open.onsuccess = () => {
				const get = open.result.transaction('kv').objectStore('kv').get('wxlogin')
				get.onerror = () => reject(get.error)
				get.onsuccess = () => { open.result.close(); resolve(get.result === null ? 'null' : get.result ? get.result.access_token : '') }
			}
		})`, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("read the tokens in IndexedDB: %v", err)
		}
		return v
	}
	access, refresh := stored(first)
	if access == "" {
		t.Fatal("the demo stored no tokens")
	}
	until(t, 10*time.Second, "the login to reach IndexedDB", func() bool { return shared(second) == access })
	until(t, 30*time.Second, "the access token to expire", func() bool {
		r := do(t, http.MethodGet, st.GatewayURL+"/api/v1/me", "", "", bearer(access))
		return r.status == http.StatusUnauthorized && r.body["code"] == "token_expired"
	})

	// Both tabs call at once (a click only starts the call).
	click := `document.getElementById('call-me').click()`
	if _, err := chromedp.Run(first, chromedp.Evaluate[chromedp.Void](click)); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(second, chromedp.Evaluate[chromedp.Void](click)); err != nil {
		t.Fatal(err)
	}
	for _, tab := range []struct {
		name string
		ctx  context.Context
	}{{"first", first}, {"second", second}} {
		if _, err := chromedp.Run(tab.ctx, chromedp.Poll[chromedp.Void](`document.getElementById('output').textContent.startsWith('GET /api/v1/me → 200')`,
			chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(20*time.Second))); err != nil {
			t.Fatalf("the %s tab's call did not succeed (%v); it shows %q", tab.name, err, text(t, tab.ctx, `#output`))
		}
	}

	refreshes := append(firstTraffic.find(http.MethodPost, "/api/v1/auth/refresh"), secondTraffic.find(http.MethodPost, "/api/v1/auth/refresh")...)
	if len(refreshes) != 1 {
		t.Fatalf("%d refreshes, want exactly one for both tabs: %+v", len(refreshes), refreshes)
	}
	if token, _ := decodeJSON(refreshes[0].body)["refresh_token"].(string); token != refresh {
		t.Errorf("the refresh spent %q, want the stored %q", token, refresh)
	}
	if refreshes[0].status != http.StatusOK {
		t.Errorf("the refresh answered %d", refreshes[0].status)
	}
	// Each tab's expired call was answered 401, then sent once more.
	for _, tt := range []struct {
		name string
		tab  context.Context
		tr   *traffic
	}{{"first", first, firstTraffic}, {"second", second, secondTraffic}} {
		var got []int64
		for _, x := range tt.tr.find(http.MethodGet, "/api/v1/me") {
			got = append(got, x.status)
		}
		if len(got) == 0 || got[len(got)-1] != http.StatusOK || len(got) > 2 || (len(got) == 2 && got[0] != http.StatusUnauthorized) {
			t.Errorf("%s tab's GET /api/v1/me answers %v, want [401 200] or [200]", tt.name, got)
		}
		if v := cspViolations(t, tt.tab); len(v) > 0 {
			t.Errorf("%s tab: CSP violations %v", tt.name, v)
		}
	}
	now, _ := stored(second)
	if now == access {
		t.Error("the stored access token is still the expired one")
	}
	if got := shared(first); got != now {
		t.Errorf("IndexedDB holds access token %q, localStorage %q", got, now)
	}

	// Logging out in one tab logs the other out too (the storage event).
	act(t, first, "log out", chromedp.Click(chromedp.CSS(`#logout`)), chromedp.WaitVisible(chromedp.CSS(`#status[data-status="logged_out"]`)))
	waitJS(t, second, "the second tab to follow the logout", `document.getElementById('status').dataset.status === 'logged_out'`)
	if got := text(t, second, `#output`); !strings.Contains(got, "another tab") {
		t.Errorf("second tab says %q after the other tab's logout", got)
	}
	if now, _ := stored(second); now != "" {
		t.Error("tokens stay in storage after the logout")
	}
	if got := shared(second); got != "null" {
		t.Errorf("IndexedDB holds %q after the logout, want null", got)
	}
}
