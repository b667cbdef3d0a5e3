package main

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/wxlogin/wxlogin/shared/wechat/fakewechat"
)

// TestDemoFollowQRInBrowser logs in through the demo's "Follow QR" tab: the
// official account's code (WeChat's image, from the fake), its phone page
// following the account, the fake's signed safe-mode push (and WeChat's
// retry) to the gateway, and the demo's long-poll answering.
func TestDemoFollowQRInBrowser(t *testing.T) {
	browser := newBrowser(t)
	// The devstack's official account, in safe mode.
	for k, v := range map[string]string{"WXLOGIN_OA_APPID": fakewechat.DevOAAppID, "WXLOGIN_OA_SECRET": fakewechat.DevOASecret,
		"WXLOGIN_OA_TOKEN": fakewechat.DevOAToken, "WXLOGIN_OA_AES_KEY": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"} {
		t.Setenv(k, v)
	}
	st := startStack(t)
	demo := newTab(t, browser)
	if err := chromedp.Do(demo,
		chromedp.Navigate(st.GatewayURL+"/demo"),
		chromedp.Click(chromedp.CSS(`#tab-follow`)),
		chromedp.WaitVisible(chromedp.CSS(`#follow-box`)),
	); err != nil {
		t.Fatalf("demo follow tab: %v", err)
	}
	until(t, 20*time.Second, "the follow QR image to load", func() bool {
		w, err := chromedp.Run(demo, chromedp.Evaluate[int](`document.getElementById('follow-qr').naturalWidth`))
		return err == nil && w > 1
	})
	saveScreenshot(t, demo, "demo-follow-qr.png")
	link, err := chromedp.Run(demo, chromedp.AttributeValue(chromedp.CSS(`#follow-link`), "href"))
	if err != nil || !strings.Contains(link.Value, "/q/") {
		t.Fatalf("follow QR link %q (%v)", link.Value, err)
	}

	phone := newTab(t, browser)
	if err := chromedp.Do(phone,
		chromedp.Navigate(link.Value),
		chromedp.WaitVisible(chromedp.CSS(`#allow`)),
		chromedp.SetValue(chromedp.CSS(`#unionid`), "u_browser_follower"),
		chromedp.Click(chromedp.CSS(`#retry`)),
		chromedp.Click(chromedp.CSS(`#allow`)),
		chromedp.WaitVisible(chromedp.CSS(`#done`)),
	); err != nil {
		t.Fatalf("phone page: %v", err)
	}
	// Both pushes (the follow and WeChat's retry) were answered success.
	if got, err := chromedp.Run(phone, chromedp.Text(chromedp.CSS(`#done`))); err != nil || strings.Count(got, "200 success") != 2 || !strings.Contains(got, "subscribe") {
		t.Errorf("phone page says %q (%v), want a subscribe answered 200 success twice", got, err)
	}

	if err := chromedp.Do(demo, chromedp.WaitVisible(chromedp.CSS(`#user-id`))); err != nil {
		t.Fatalf("demo after the follow: %v", err)
	}
	claims, err := chromedp.Run(demo, chromedp.Text(chromedp.CSS(`#claims`)))
	if err != nil || !strings.Contains(claims, `"officialaccount"`) {
		t.Errorf("demo shows claims %q (%v), want kind officialaccount", claims, err)
	}
	saveScreenshot(t, demo, "demo-follow.png")
}
