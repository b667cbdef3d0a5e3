package fakewechat_test

import (
	"context"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"

	"github.com/wxlogin/wxlogin/shared/wechat"
	"github.com/wxlogin/wxlogin/shared/wechat/fakewechat"
	"github.com/wxlogin/wxlogin/shared/wechat/oapush"
)

const oaAESKey = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"

// serverURL records the pushes it gets, opening them as an official
// account's server would.
type serverURL struct {
	mu     sync.Mutex
	pushes []oapush.Message
	raw    []url.Values
}

func (s *serverURL) handler(t *testing.T, key string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		body, _ := io.ReadAll(r.Body)
		if oapush.Verify(q.Get("signature"), fakewechat.DevOAToken, q.Get("timestamp"), q.Get("nonce")) != nil {
			t.Errorf("push signature does not verify")
		}
		m, err := oapush.Parse(body)
		if err != nil {
			t.Errorf("push body: %v", err)
		}
		if key != "" {
			if q.Get("encrypt_type") != "aes" || oapush.Verify(q.Get("msg_signature"), fakewechat.DevOAToken, q.Get("timestamp"), q.Get("nonce"), m.Encrypt) != nil {
				t.Errorf("safe-mode push without a valid msg_signature: %v", q)
			}
			c, _ := oapush.NewCipher(key, fakewechat.DevOAAppID)
			inner, err := c.Decrypt(m.Encrypt)
			if err != nil {
				t.Errorf("decrypt: %v", err)
			}
			m, _ = oapush.Parse(inner)
		}
		s.mu.Lock()
		s.pushes, s.raw = append(s.pushes, m), append(s.raw, q)
		s.mu.Unlock()
		_, _ = w.Write([]byte("success"))
	})
}

func TestOAFollowQR(t *testing.T) {
	for _, key := range []string{"", oaAESKey} {
		t.Run("aes="+key, func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			var got serverURL
			srv := httptest.NewServer(got.handler(t, key))
			t.Cleanup(srv.Close)
			if err := e.fake.SetOAServer(fakewechat.DevOAAppID, fakewechat.OAServer{URL: srv.URL + "/events", Token: fakewechat.DevOAToken, EncodingAESKey: key}); err != nil {
				t.Fatal(err)
			}
			if err := e.fake.SetOAServer(fakewechat.DevWebAppID, fakewechat.OAServer{URL: srv.URL, Token: "abc"}); err == nil {
				t.Fatal("a website app got a server URL")
			}
			at, err := e.client.StableToken(ctx, fakewechat.DevOAAppID, fakewechat.DevOASecret, false)
			if err != nil {
				t.Fatal(err)
			}
			qr, err := e.client.CreateOAQRCode(ctx, at.AccessToken, "wxl.scene.one", 300)
			if err != nil || qr.ExpireSeconds != 300 {
				t.Fatalf("qrcode/create: %+v, %v", qr, err)
			}
			// The image decodes as a PNG.
			resp, err := http.Get(wechat.OAQRImageURL(e.srv.URL, qr.Ticket))
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("showqrcode: %v %v", resp, err)
			}
			if _, err := png.Decode(resp.Body); err != nil {
				t.Fatalf("showqrcode image: %v", err)
			}
			resp.Body.Close()

			scan, err := e.fake.ScanOAQR(ctx, qr.URL, fakewechat.User{UnionID: "union-oa-1"}, true)
			if err != nil || scan.Event != "subscribe" || len(scan.Pushes) != 2 || scan.Pushes[1].Body != "success" {
				t.Fatalf("first scan: %+v, %v", scan, err)
			}
			again, err := e.fake.ScanOAQR(ctx, qr.URL, fakewechat.User{UnionID: "union-oa-1"}, false)
			if err != nil || again.Event != "SCAN" || again.User.OpenID != scan.User.OpenID {
				t.Fatalf("second scan: %+v, %v", again, err)
			}
			if len(got.pushes) != 3 {
				t.Fatalf("%d pushes, want 3", len(got.pushes))
			}
			first, retry, scanned := got.pushes[0], got.pushes[1], got.pushes[2]
			if first.Scene() != "wxl.scene.one" || first.EventKey != "qrscene_wxl.scene.one" || first.FromUserName != scan.User.OpenID {
				t.Fatalf("subscribe push: %+v", first)
			}
			if retry != first {
				t.Fatalf("the retry differs: %+v", retry)
			}
			if scanned.Event != "SCAN" || scanned.EventKey != "wxl.scene.one" {
				t.Fatalf("scan push: %+v", scanned)
			}
			f, err := e.client.OAUserInfo(ctx, at.AccessToken, scan.User.OpenID)
			if err != nil || !f.Subscribed || f.UnionID != "union-oa-1" {
				t.Fatalf("user/info: %+v, %v", f, err)
			}
			if _, err := e.client.OAUserInfo(ctx, at.AccessToken, "o-nobody"); wechat.ErrCode(err) != 40003 {
				t.Fatalf("unknown openid: %v", err)
			}
			// Another app's token may not create codes.
			mt, _ := e.client.StableToken(ctx, miniID, miniSecret, false)
			if _, err := e.client.CreateOAQRCode(ctx, mt.AccessToken, "s", 60); wechat.ErrCode(err) != 48001 {
				t.Fatalf("mini-program token: %v", err)
			}
		})
	}
}
