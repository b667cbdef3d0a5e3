package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
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
func newTab(t *testing.T, browser context.Context) context.Context {
	t.Helper()
	tab, cancel := chromedp.NewContext(browser)
	if err := chromedp.Do(tab, chromedp.Navigate("about:blank")); err != nil {
		t.Fatal(err)
	}
	tab, cancelTimeout := context.WithTimeout(tab, time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancel() })
	return tab
}

var phoneLink = regexp.MustCompile(`id="phone-link"[^>]*href="([^"]+)"`)

// phoneURL reads the fake WeChat's QR page shown in the demo's iframe and
// returns the URL its QR code encodes: the page a phone opens on scanning.
func phoneURL(t *testing.T, ctx context.Context) string {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(`#qr-frame`))); err != nil {
		t.Fatalf("demo shows no QR iframe: %v", err)
	}
	src, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(`#qr-frame`), "src"))
	if err != nil || !src.Exists {
		t.Fatalf("QR iframe has no src: %v", err)
	}
	resp, err := http.Get(src.Value)
	if err != nil {
		t.Fatalf("QR page: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := phoneLink.FindSubmatch(body)
	if m == nil {
		t.Fatalf("QR page has no phone link: %s", body)
	}
	return strings.ReplaceAll(string(m[1]), "&amp;", "&")
}

func TestDemoPageInBrowser(t *testing.T) {
	browser := newBrowser(t)
	st := startStack(t)

	t.Run("allow", func(t *testing.T) {
		demo := newTab(t, browser)
		if err := chromedp.Do(demo, chromedp.Navigate(st.GatewayURL+"/demo")); err != nil {
			t.Fatal(err)
		}
		link := phoneURL(t, demo)
		saveScreenshot(t, demo, "demo-qr.png")
		phone := newTab(t, browser) // a second tab: the phone
		if err := chromedp.Do(phone,
			chromedp.Navigate(link),
			chromedp.WaitVisible(chromedp.CSS(`#allow`)),
			chromedp.SetValue(chromedp.CSS(`#nickname`), "Browser Bob"),
			chromedp.Click(chromedp.CSS(`#allow`)),
			chromedp.WaitVisible(chromedp.CSS(`#result`)),
		); err != nil {
			t.Fatalf("phone: %v", err)
		}
		done, err := chromedp.Run(phone, chromedp.Text(chromedp.CSS(`#result`)))
		if err != nil || !strings.Contains(done, "登录成功") {
			t.Errorf("callback page says %q (%v), want the login confirmed", done, err)
		}
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

	t.Run("deny", func(t *testing.T) {
		demo := newTab(t, browser)
		if err := chromedp.Do(demo, chromedp.Navigate(st.GatewayURL+"/demo")); err != nil {
			t.Fatal(err)
		}
		phone := newTab(t, browser)
		if err := chromedp.Do(phone,
			chromedp.Navigate(phoneURL(t, demo)),
			chromedp.WaitVisible(chromedp.CSS(`#deny`)),
			chromedp.Click(chromedp.CSS(`#deny`)),
			chromedp.WaitVisible(chromedp.CSS(`#result`)),
		); err != nil {
			t.Fatalf("phone: %v", err)
		}
		if err := chromedp.Do(demo, chromedp.WaitVisible(chromedp.CSS(`#status[data-status="denied"]`))); err != nil {
			t.Fatalf("demo after deny: %v", err)
		}
		if status, err := chromedp.Run(demo, chromedp.Text(chromedp.CSS(`#status`))); err != nil || status == "" {
			t.Errorf("demo shows no status after deny (%v)", err)
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
	st := startStack(t)
	demo := newTab(t, browser)
	if err := chromedp.Do(demo, chromedp.Navigate(st.GatewayURL+"/demo")); err != nil {
		t.Fatal(err)
	}
	phone := newTab(t, browser)
	if err := chromedp.Do(phone,
		chromedp.Navigate(phoneURL(t, demo)),
		chromedp.WaitVisible(chromedp.CSS(`#allow`)),
		chromedp.SetValue(chromedp.CSS(`#nickname`), "Newcomer Nina"),
		chromedp.Click(chromedp.CSS(`#allow`)),
		chromedp.WaitVisible(chromedp.CSS(`#result`)),
	); err != nil {
		t.Fatalf("phone: %v", err)
	}
	if err := chromedp.Do(demo,
		chromedp.WaitVisible(chromedp.CSS(`#status[data-status="not_bound"]`)),
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
