package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/shared/freeaddr"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"

	"github.com/wxlogin/wxlogin/shared/wechat/fakewechat"
)

// chromium finds a Chromium to drive. Under CI=true it must be there (.ci/run
// installs Debian's); elsewhere the browser test is skipped without one.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("Chromium is not installed; .ci/run installs Debian's chromium package")
	}
	t.Skip("Chromium not installed: the browser test runs where it is (always under CI=true)")
	return ""
}

func newBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(1100, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	// No timeout on the browser's own context: it would stop the browser.
	// Each tab below runs with a deadline instead.
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return ctx
}

// newTab opens a tab of browser that is closed, at the latest, after a minute.
// With chromedp.WithNewBrowserContext() the tab is a profile of its own (its
// own cookies, localStorage and locks): another person's browser.
func newTab(t *testing.T, browser context.Context, opts ...chromedp.ContextOption) context.Context {
	t.Helper()
	tab, cancel := chromedp.NewContext(browser, opts...)
	if err := chromedp.Do(tab, chromedp.Navigate("about:blank")); err != nil {
		t.Fatal(err)
	}
	tab, cancelTimeout := context.WithTimeout(tab, time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancel() })
	return tab
}

// startCrossSiteStack runs the devstack with the fake WeChat under another
// site than the gateway (localhost against 127.0.0.1), as
// open.weixin.qq.com is: the browser applies SameSite as in production.
func startCrossSiteStack(t *testing.T) *testStack {
	t.Helper()
	addr := freeaddr.Addr(t)
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("WXLOGIN_WECHAT_OPEN_BASE", "http://localhost:"+port)
	return startStackOn(t, addr)
}

// qrFrame attaches to the demo's QR iframe: WeChat's page, from another
// site, so Chromium runs it as a target of its own.
func qrFrame(t *testing.T, demo context.Context) context.Context {
	t.Helper()
	var id target.ID
	until(t, 20*time.Second, "the QR iframe to load", func() bool {
		infos, err := chromedp.Targets(demo)
		if err != nil {
			t.Fatalf("targets: %v", err)
		}
		for _, info := range infos {
			if info.Type == "iframe" && strings.Contains(info.URL, fakewechat.PathQRConnect) {
				id = info.TargetID
				return true
			}
		}
		return false
	})
	frame, cancel := chromedp.NewContext(demo, chromedp.WithTargetID(id))
	t.Cleanup(cancel)
	return frame
}

// phoneURL reads the URL the QR code encodes (the page a phone opens on
// scanning it) from the fake WeChat's QR page shown in ctx.
func phoneURL(t *testing.T, ctx context.Context) string {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(`#qr`))); err != nil {
		t.Fatalf("no QR code shown: %v", err)
	}
	href, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(`#phone-link`), "href"))
	if err != nil || !href.Exists {
		t.Fatalf("QR page has no phone link: %v", err)
	}
	return href.Value
}

// answerOnPhone opens the phone page in a tab of browser and allows (as
// nickname) or denies. The phone only answers: the QR page goes on.
func answerOnPhone(t *testing.T, browser context.Context, link, nickname string, allow bool) {
	t.Helper()
	phone := newTab(t, browser)
	button := `#deny`
	steps := []chromedp.Action[chromedp.Void]{chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS(`#allow`))}
	if allow {
		button = `#allow`
		steps = append(steps, chromedp.SetValue(chromedp.CSS(`#nickname`), nickname))
	}
	steps = append(steps, chromedp.Click(chromedp.CSS(button)), chromedp.WaitVisible(chromedp.CSS(`#done`)))
	if err := chromedp.Do(phone, steps...); err != nil {
		t.Fatalf("phone: %v", err)
	}
	if loc, err := chromedp.Run(phone, chromedp.Location()); err != nil || strings.Contains(loc, "/api/v1/auth/web/callback") {
		t.Errorf("the phone went to %q (%v): only the page showing the QR code may", loc, err)
	}
}

// ticketCookie returns the ticket named in the callback URL the tab shows
// and the poll token the browser holds in that ticket's cookie.
func ticketCookie(t *testing.T, tab context.Context, gatewayURL string) (ticket, pollToken string) {
	t.Helper()
	loc, err := chromedp.Run(tab, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(loc)
	if err != nil || u.Path != "/api/v1/auth/web/callback" || u.Query().Get("state") == "" {
		t.Fatalf("tab is at %q, want the callback", loc)
	}
	ticket = u.Query().Get("state")
	res, err := chromedp.Call(tab, network.GetCookies, network.GetCookiesParams{URLs: []string{gatewayURL + "/api/v1/auth/web/callback"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range res.Cookies {
		if c.Name == "wxlogin_qr_"+ticket {
			if !c.HTTPOnly || c.SameSite != network.CookieSameSiteLax {
				t.Errorf("ticket cookie %+v: want HttpOnly, SameSite=Lax", c)
			}
			return ticket, c.Value
		}
	}
	t.Fatalf("the browser holds no cookie for ticket %s", ticket)
	return "", ""
}

// wantCallbackPage waits for the gateway's callback page in tab and checks
// what it says.
func wantCallbackPage(t *testing.T, tab context.Context, says string) {
	t.Helper()
	if err := chromedp.Do(tab, chromedp.WaitVisible(chromedp.CSS(`#result`))); err != nil {
		t.Fatalf("no callback page: %v", err)
	}
	if got, err := chromedp.Run(tab, chromedp.Text(chromedp.CSS(`#result`))); err != nil || !strings.Contains(got, says) {
		t.Errorf("callback page says %q (%v), want %q", got, err, says)
	}
}

// wantConfirmedFor polls the ticket with the poll token the browser holds:
// the login is done, for nickname.
func wantConfirmedFor(t *testing.T, st *testStack, ticket, pollToken, nickname string) {
	t.Helper()
	r := do(t, http.MethodGet, st.GatewayURL+"/api/v1/auth/web/qr/"+ticket, "", "", map[string]string{"X-Poll-Token": pollToken})
	user, _ := r.body["user"].(map[string]any)
	if r.status != http.StatusOK || r.body["status"] != "confirmed" || r.body["access_token"] == nil || user["nickname"] != nickname {
		t.Fatalf("poll with the browser's cookie value: %d %s", r.status, r.raw)
	}
}

// TestDemoPageInBrowser logs in through the demo in each of WeChat's three
// ways to the callback, with the fake WeChat on another site: the ticket's
// SameSite=Lax cookie must reach the callback in all of them. The demo keeps
// a login for every tab of a profile, so each case is a profile of its own.
func TestDemoPageInBrowser(t *testing.T) {
	browser := newBrowser(t)
	st := startCrossSiteStack(t)

	t.Run("WxLogin iframe, self_redirect true: allow", func(t *testing.T) {
		demo := newTab(t, browser, chromedp.WithNewBrowserContext())
		if err := chromedp.Do(demo, chromedp.Navigate(st.GatewayURL+"/demo")); err != nil {
			t.Fatal(err)
		}
		link := phoneURL(t, qrFrame(t, demo))
		saveScreenshot(t, demo, "demo-qr.png")
		answerOnPhone(t, browser, link, "Browser Bob", true)
		if err := chromedp.Do(demo, chromedp.WaitVisible(chromedp.CSS(`#user-nickname`))); err != nil {
			t.Fatalf("demo after allow: %v", err)
		}
		nickname, err1 := chromedp.Run(demo, chromedp.Text(chromedp.CSS(`#user-nickname`)))
		claims, err2 := chromedp.Run(demo, chromedp.Text(chromedp.CSS(`#claims`)))
		if err := errors.Join(err1, err2); err != nil {
			t.Fatalf("demo after allow: %v", err)
		}
		if nickname != "Browser Bob" {
			t.Errorf("demo shows nickname %q, want Browser Bob", nickname)
		}
		if !strings.Contains(claims, `"sub"`) || !strings.Contains(claims, `"iss"`) {
			t.Errorf("demo shows no decoded claims: %q", claims)
		}
		saveScreenshot(t, demo, "demo.png")
	})

	t.Run("WxLogin iframe, self_redirect true: deny", func(t *testing.T) {
		demo := newTab(t, browser, chromedp.WithNewBrowserContext())
		if err := chromedp.Do(demo, chromedp.Navigate(st.GatewayURL+"/demo")); err != nil {
			t.Fatal(err)
		}
		answerOnPhone(t, browser, phoneURL(t, qrFrame(t, demo)), "", false)
		if err := chromedp.Do(demo, chromedp.WaitVisible(chromedp.CSS(`#status[data-status="denied"]`))); err != nil {
			t.Fatalf("demo after deny: %v", err)
		}
		if status, err := chromedp.Run(demo, chromedp.Text(chromedp.CSS(`#status`))); err != nil || status == "" {
			t.Errorf("demo shows no status after deny (%v)", err)
		}
	})

	// In these two the top window ends on the callback page; the test polls
	// with the poll token the browser holds in the ticket's cookie.
	for _, tt := range []struct {
		name, mode, nickname string
		inFrame              bool // the QR page is the demo's iframe, else the tab itself
	}{
		{"WxLogin iframe, self_redirect false: the top window goes to the callback", "top", "Top Tina", true},
		{"top page redirected to WeChat", "redirect", "Redirected Rita", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tab := newTab(t, browser, chromedp.WithNewBrowserContext())
			if err := chromedp.Do(tab, chromedp.Navigate(st.GatewayURL+"/demo?mode="+tt.mode)); err != nil {
				t.Fatal(err)
			}
			qr := tab
			if tt.inFrame {
				qr = qrFrame(t, tab)
			}
			answerOnPhone(t, browser, phoneURL(t, qr), tt.nickname, true)
			wantCallbackPage(t, tab, "登录成功")
			ticket, pollToken := ticketCookie(t, tab, st.GatewayURL)
			wantConfirmedFor(t, st, ticket, pollToken, tt.nickname)
		})
	}

	t.Run("a callback from another browser changes nothing", func(t *testing.T) {
		demo := newTab(t, browser, chromedp.WithNewBrowserContext())
		if err := chromedp.Do(demo, chromedp.Navigate(st.GatewayURL+"/demo")); err != nil {
			t.Fatal(err)
		}
		frame := qrFrame(t, demo)
		link := phoneURL(t, frame)
		qr, err := chromedp.Run(frame, chromedp.Location())
		if err != nil {
			t.Fatal(err)
		}
		// The attacker saw the victim's QR code (its state) and finishes
		// the login with their own WeChat, in their own browser.
		forged, err := st.Fake.ScanAndConfirm(qr, fakewechat.User{Nickname: "Mallory"}, true)
		if err != nil {
			t.Fatal(err)
		}
		attacker, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
		t.Cleanup(cancel)
		if err := chromedp.Do(attacker, chromedp.Navigate(forged)); err != nil {
			t.Fatal(err)
		}
		wantCallbackPage(t, attacker, "请在显示二维码的浏览器中完成登录")
		du, err := url.Parse(forged)
		if err != nil {
			t.Fatal(err)
		}
		dq := du.Query()
		dq.Del("code") // the same without the code: a denial
		du.RawQuery = dq.Encode()
		denial := du.String()
		if err := chromedp.Do(attacker, chromedp.Navigate(denial)); err != nil {
			t.Fatal(err)
		}
		wantCallbackPage(t, attacker, "请在显示二维码的浏览器中完成登录")
		if status, err := chromedp.Run(demo, chromedp.AttributeValue(chromedp.CSS(`#status`), "data-status")); err != nil || status.Value != "pending" {
			t.Fatalf("victim's demo is %q (%v) after the forged callbacks, want pending", status.Value, err)
		}
		// The victim's own scan still logs the victim in.
		answerOnPhone(t, browser, link, "Victim Vera", true)
		if err := chromedp.Do(demo, chromedp.WaitVisible(chromedp.CSS(`#user-nickname`))); err != nil {
			t.Fatalf("demo after the victim's allow: %v", err)
		}
		if name, err := chromedp.Run(demo, chromedp.Text(chromedp.CSS(`#user-nickname`))); err != nil || name != "Victim Vera" {
			t.Errorf("victim logged in as %q (%v), want Victim Vera", name, err)
		}
	})
}

// saveScreenshot keeps a PNG of the tab for the README when
// WXLOGIN_SCREENSHOT_DIR is set.
func saveScreenshot(t *testing.T, tab context.Context, name string) {
	t.Helper()
	dir := os.Getenv("WXLOGIN_SCREENSHOT_DIR")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(tab, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestDemoRegistersUnknownUser: with auto-register off, a website login of an
// unknown WeChat user ends on the demo's register form, which uses the bind
// token the poll handed over.
func TestDemoRegistersUnknownUser(t *testing.T) {
	browser := newBrowser(t)
	t.Setenv("WXLOGIN_AUTO_REGISTER", "false")
	st := startCrossSiteStack(t)
	demo := newTab(t, browser)
	if err := chromedp.Do(demo, chromedp.Navigate(st.GatewayURL+"/demo")); err != nil {
		t.Fatal(err)
	}
	answerOnPhone(t, browser, phoneURL(t, qrFrame(t, demo)), "Newcomer Nina", true)
	if err := chromedp.Do(demo, chromedp.WaitVisible(chromedp.CSS(`#status[data-status="not_bound"]`))); err != nil {
		t.Fatalf("demo not_bound: %v", err)
	}
	// Whose WeChat it is, before the form offers to bind it.
	if who, err := chromedp.Run(demo, chromedp.Text(chromedp.CSS(`#bind-nickname`))); err != nil || who != "Newcomer Nina" {
		t.Errorf("bind form shows WeChat %q (%v), want Newcomer Nina", who, err)
	}
	if err := chromedp.Do(demo,
		chromedp.WaitVisible(chromedp.CSS(`#bind-avatar`)),
		chromedp.SetValue(chromedp.CSS(`#bind-username`), "nina"),
		chromedp.SetValue(chromedp.CSS(`#bind-password`), "Nina-Secret-42"),
		chromedp.Click(chromedp.CSS(`#bind-submit`)),
		chromedp.WaitVisible(chromedp.CSS(`#user-nickname`)),
	); err != nil {
		t.Fatalf("demo register form: %v", err)
	}
	name, err := chromedp.Run(demo, chromedp.Text(chromedp.CSS(`#user-nickname`)))
	if err != nil || name != "Newcomer Nina" {
		t.Errorf("registered user shows %q (%v), want the WeChat nickname", name, err)
	}
}
