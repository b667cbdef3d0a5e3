package wechat_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/shared/wechat"
)

const (
	testSecret = "s3cr3t-app-secret-value"
	testCode   = "0a3XyzTheCodeFromWxLogin0000000"
)

// canned serves body with status for every request, as WeChat would.
func canned(t *testing.T, status int, contentType, body string) *wechat.Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return wechat.New(wechat.Options{APIBase: srv.URL})
}

func TestLenientDecoding(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name, body string
		check      func(t *testing.T, c *wechat.Client)
	}{
		{"sex as a string", `{"openid":"o1","nickname":"n","sex":"1","privilege":[]}`, func(t *testing.T, c *wechat.Client) {
			u, err := c.UserInfo(ctx, "tok", "o1")
			if err != nil || u.Sex != 1 {
				t.Fatalf("UserInfo = %+v, %v; want sex 1", u, err)
			}
		}},
		{"sex as a number", `{"openid":"o1","sex":2}`, func(t *testing.T, c *wechat.Client) {
			u, err := c.UserInfo(ctx, "tok", "o1")
			if err != nil || u.Sex != 2 {
				t.Fatalf("UserInfo = %+v, %v; want sex 2", u, err)
			}
		}},
		{"sex empty", `{"openid":"o1","sex":""}`, func(t *testing.T, c *wechat.Client) {
			u, err := c.UserInfo(ctx, "tok", "o1")
			if err != nil || u.Sex != 0 {
				t.Fatalf("UserInfo = %+v, %v; want sex 0", u, err)
			}
		}},
		{"countryCode as a number", `{"errcode":0,"errmsg":"ok","phone_info":{"phoneNumber":"13800138000","purePhoneNumber":"13800138000","countryCode":86,"watermark":{"timestamp":1,"appid":"wxa"}}}`,
			func(t *testing.T, c *wechat.Client) {
				p, err := c.PhoneNumber(ctx, "tok", "code")
				if err != nil || p.CountryCode != "86" || p.WatermarkAppID != "wxa" {
					t.Fatalf("PhoneNumber = %+v, %v", p, err)
				}
			}},
		{"countryCode as a string", `{"errcode":0,"errmsg":"ok","phone_info":{"phoneNumber":"13800138000","purePhoneNumber":"13800138000","countryCode":"86"}}`,
			func(t *testing.T, c *wechat.Client) {
				p, err := c.PhoneNumber(ctx, "tok", "code")
				if err != nil || p.CountryCode != "86" {
					t.Fatalf("PhoneNumber = %+v, %v", p, err)
				}
			}},
		{"expires_in as a string", `{"access_token":"at","expires_in":"7200"}`, func(t *testing.T, c *wechat.Client) {
			a, err := c.StableToken(ctx, "wxa", testSecret, false)
			if err != nil || a.ExpiresIn != 7200 || a.AccessToken != "at" {
				t.Fatalf("StableToken = %+v, %v", a, err)
			}
		}},
		{"unknown fields and expires_in in jscode2session", `{"openid":"o1","session_key":"k","expires_in":7200,"extra":{"x":1}}`, func(t *testing.T, c *wechat.Client) {
			s, err := c.Code2Session(ctx, "wxa", testSecret, testCode)
			if err != nil || s.OpenID != "o1" || s.UnionID != "" {
				t.Fatalf("Code2Session = %+v, %v", s, err)
			}
		}},
		{"errcode 0 is success", `{"errcode":0,"errmsg":"ok","openid":"o1","session_key":"k"}`, func(t *testing.T, c *wechat.Client) {
			if _, err := c.Code2Session(ctx, "wxa", testSecret, testCode); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// text/plain, as WeChat labels its JSON.
			tt.check(t, canned(t, http.StatusOK, "text/plain", tt.body))
		})
	}
}

func TestErrcodes(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name, body string
		wantCode   int
		wantMsg    string
	}{
		{"errcode as a number", `{"errcode":40029,"errmsg":"invalid code, rid: 6492c3f2-2b1a3c4d-5e6f7a8b"}`, 40029, "invalid code, rid: 6492c3f2-2b1a3c4d-5e6f7a8b"},
		{"errcode as a string", `{"errcode":"40163","errmsg":"code been used, rid: 1-2-3"}`, 40163, "code been used, rid: 1-2-3"},
		{"busy", `{"errcode":-1,"errmsg":"system error"}`, -1, "system error"},
		{"errcode without errmsg", `{"errcode":45011}`, 45011, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := canned(t, http.StatusOK, "text/plain", tt.body).Code2Session(ctx, "wxa", testSecret, testCode)
			var we *wechat.Error
			if !errors.As(err, &we) {
				t.Fatalf("err = %v, want *wechat.Error", err)
			}
			if we.Code != tt.wantCode || we.Msg != tt.wantMsg || we.Path != "/sns/jscode2session" {
				t.Errorf("error = %+v", we)
			}
			if wechat.ErrCode(err) != tt.wantCode {
				t.Errorf("ErrCode = %d", wechat.ErrCode(err))
			}
			if errors.Is(err, wechat.ErrUnavailable) {
				t.Error("an errcode answer is not ErrUnavailable")
			}
		})
	}
	if wechat.ErrCode(errors.New("other")) != 0 || wechat.ErrCode(nil) != 0 {
		t.Error("ErrCode of a non-WeChat error is not 0")
	}
}

func TestUnavailable(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name, contentType, body string
		status                  int
		call                    func(c *wechat.Client) error
	}{
		{"HTTP 502", "text/html", "<html>bad gateway</html>", http.StatusBadGateway, code2session},
		{"HTTP 500 with a JSON errcode", "application/json", `{"errcode":-1}`, http.StatusInternalServerError, code2session},
		{"HTML with 200", "text/html", "<html>maintenance</html>", http.StatusOK, code2session},
		{"empty body", "text/plain", "", http.StatusOK, code2session},
		{"truncated JSON", "text/plain", `{"openid":"o1"`, http.StatusOK, code2session},
		// Valid JSON, but past the 1 MiB read limit: never read whole.
		{"answer over 1 MiB", "text/plain", `{"openid":"o1","session_key":"k","pad":"` + strings.Repeat("a", 2<<20) + `"}`, http.StatusOK, code2session},
		{"success without openid", "text/plain", `{"session_key":"k"}`, http.StatusOK, code2session},
		{"oauth without openid", "text/plain", `{"access_token":"a"}`, http.StatusOK, func(c *wechat.Client) error {
			_, err := c.OAuthAccessToken(ctx, "wxa", testSecret, testCode)
			return err
		}},
		{"sex not a number", "text/plain", `{"openid":"o1","sex":"male"}`, http.StatusOK, func(c *wechat.Client) error {
			_, err := c.UserInfo(ctx, "tok", "o1")
			return err
		}},
		{"stable_token without token", "text/plain", `{"expires_in":7200}`, http.StatusOK, func(c *wechat.Client) error {
			_, err := c.StableToken(ctx, "wxa", testSecret, false)
			return err
		}},
		{"phone without phone_info", "text/plain", `{"errcode":0,"errmsg":"ok"}`, http.StatusOK, func(c *wechat.Client) error {
			_, err := c.PhoneNumber(ctx, "tok", testCode)
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call(canned(t, tt.status, tt.contentType, tt.body))
			if !errors.Is(err, wechat.ErrUnavailable) {
				t.Fatalf("err = %v, want ErrUnavailable", err)
			}
			assertNoSecrets(t, err)
		})
	}
}

func code2session(c *wechat.Client) error {
	_, err := c.Code2Session(context.Background(), "wxa", testSecret, testCode)
	return err
}

func assertNoSecrets(t *testing.T, err error) {
	t.Helper()
	for _, s := range []string{testSecret, testCode} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error %q contains a secret or code", err)
		}
	}
}

func TestUnreachable(t *testing.T) {
	// A port that was just free: nothing listens there.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	ln.Close()

	tests := []struct {
		name string
		base string
	}{
		{"connection refused", base},
		{"malformed base URL", "http://[::1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := wechat.New(wechat.Options{APIBase: tt.base})
			calls := map[string]func() error{
				"Code2Session": func() error {
					_, err := c.Code2Session(context.Background(), "wxa", testSecret, testCode)
					return err
				},
				"OAuthAccessToken": func() error {
					_, err := c.OAuthAccessToken(context.Background(), "wxa", testSecret, testCode)
					return err
				},
				"StableToken": func() error {
					_, err := c.StableToken(context.Background(), "wxa", testSecret, false)
					return err
				},
				"PhoneNumber": func() error {
					_, err := c.PhoneNumber(context.Background(), testSecret, testCode) // the access token is a secret too
					return err
				},
			}
			for name, call := range calls {
				err := call()
				if err == nil {
					t.Fatalf("%s: no error", name)
				}
				if tt.name == "connection refused" && !errors.Is(err, wechat.ErrUnavailable) {
					t.Errorf("%s: err = %v, want ErrUnavailable", name, err)
				}
				assertNoSecrets(t, err)
			}
		})
	}
}

func TestTimeout(t *testing.T) {
	// The server answers only when the test ends, so only a deadline can end the call.
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })

	t.Run("context deadline", func(t *testing.T) {
		c := wechat.New(wechat.Options{APIBase: srv.URL})
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err := c.Code2Session(ctx, "wxa", testSecret, testCode)
		if !errors.Is(err, wechat.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want ErrUnavailable and context.DeadlineExceeded", err)
		}
		assertNoSecrets(t, err)
	})

	t.Run("cancelled context", func(t *testing.T) {
		c := wechat.New(wechat.Options{APIBase: srv.URL})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := c.Code2Session(ctx, "wxa", testSecret, testCode)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})

	t.Run("default timeout is below the gateway's 3s", func(t *testing.T) {
		c := wechat.New(wechat.Options{APIBase: srv.URL})
		began := time.Now()
		_, err := c.Code2Session(context.Background(), "wxa", testSecret, testCode)
		took := time.Since(began)
		if !errors.Is(err, wechat.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want ErrUnavailable and a deadline", err)
		}
		if took < wechat.DefaultTimeout || took >= 3*time.Second {
			t.Errorf("gave up after %s, want %s (under 3s)", took, wechat.DefaultTimeout)
		}
	})

	t.Run("client timeout", func(t *testing.T) {
		c := wechat.New(wechat.Options{APIBase: srv.URL, Timeout: 50 * time.Millisecond})
		_, err := c.Code2Session(context.Background(), "wxa", testSecret, testCode)
		if !errors.Is(err, wechat.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want ErrUnavailable and a deadline", err)
		}
		assertNoSecrets(t, err)
	})
}

func TestRequests(t *testing.T) {
	// What the client sends, as WeChat expects it.
	type sent struct{ method, uri, body string }
	requests := make(chan sent, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		requests <- sent{r.Method, r.URL.RequestURI(), string(b)}
		_, _ = io.WriteString(w, `{"openid":"o1","access_token":"a","phone_info":{"phoneNumber":"1"}}`)
	}))
	t.Cleanup(srv.Close)
	c := wechat.New(wechat.Options{APIBase: srv.URL + "/"})
	ctx := context.Background()

	tests := []struct {
		name       string
		call       func() error
		wantMethod string
		wantURL    string
		wantBody   string
	}{
		{"jscode2session", func() error { _, err := c.Code2Session(ctx, "wxa", "sec", "cd"); return err },
			"GET", "/sns/jscode2session?appid=wxa&grant_type=authorization_code&js_code=cd&secret=sec", ""},
		{"oauth2", func() error { _, err := c.OAuthAccessToken(ctx, "wxa", "sec", "cd"); return err },
			"GET", "/sns/oauth2/access_token?appid=wxa&code=cd&grant_type=authorization_code&secret=sec", ""},
		{"userinfo", func() error { _, err := c.UserInfo(ctx, "tok", "o1"); return err },
			"GET", "/sns/userinfo?access_token=tok&lang=zh_CN&openid=o1", ""},
		{"stable_token", func() error { _, err := c.StableToken(ctx, "wxa", "sec", true); return err },
			"POST", "/cgi-bin/stable_token", `{"appid":"wxa","force_refresh":true,"grant_type":"client_credential","secret":"sec"}`},
		{"phone", func() error { _, err := c.PhoneNumber(ctx, "tok", "cd"); return err },
			"POST", "/wxa/business/getuserphonenumber?access_token=tok", `{"code":"cd"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); err != nil {
				t.Fatal(err)
			}
			got := <-requests
			if got.method != tt.wantMethod || got.uri != tt.wantURL || got.body != tt.wantBody {
				t.Errorf("sent %s %s %s, want %s %s %s", got.method, got.uri, got.body, tt.wantMethod, tt.wantURL, tt.wantBody)
			}
		})
	}
}

func TestQRConnectURL(t *testing.T) {
	c := wechat.New(wechat.Options{OpenBase: "http://127.0.0.1:9090/"})
	got := c.QRConnectURL("wx2222222222222222", "http://127.0.0.1:8080/api/v1/auth/web/callback", "st4te")
	want := "http://127.0.0.1:9090/connect/qrconnect?appid=wx2222222222222222&redirect_uri=http%3A%2F%2F127.0.0.1%3A8080%2Fapi%2Fv1%2Fauth%2Fweb%2Fcallback&response_type=code&scope=snsapi_login&state=st4te#wechat_redirect"
	if got != want {
		t.Errorf("QRConnectURL =\n%s\nwant\n%s", got, want)
	}
}
