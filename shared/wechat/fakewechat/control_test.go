package fakewechat_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/shared/wechat"
	"github.com/wxlogin/wxlogin/shared/wechat/fakewechat"
)

// postJSON calls a control endpoint and decodes its JSON answer, if any.
func postJSON(t *testing.T, e *env, path, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(e.srv.URL+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if len(b) > 0 {
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: Content-Type %q", path, ct)
		}
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: answer %q is not JSON: %v", path, b, err)
		}
	}
	return resp.StatusCode, m
}

func TestControlCodes(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)

	t.Run("mini-program code with a given user", func(t *testing.T) {
		status, m := postJSON(t, e, "/fake/codes", `{"appid":"`+miniID+`","openid":"oCtl","unionid":"uCtl"}`)
		if status != http.StatusCreated || m["openid"] != "oCtl" || m["unionid"] != "uCtl" {
			t.Fatalf("answer %d %v", status, m)
		}
		sess, err := e.client.Code2Session(ctx, miniID, miniSecret, m["code"].(string))
		if err != nil {
			t.Fatal(err)
		}
		if sess.OpenID != "oCtl" || sess.UnionID != "uCtl" {
			t.Errorf("session %+v", sess)
		}
	})

	t.Run("web code with a profile", func(t *testing.T) {
		status, m := postJSON(t, e, "/fake/codes", `{"appid":"`+webID+`","nickname":"Band","sex":1,"city":"Guangzhou","headimgurl":"https://x/0"}`)
		if status != http.StatusCreated || m["unionid"] != "" || !strings.HasPrefix(m["openid"].(string), "o") {
			t.Fatalf("answer %d %v", status, m)
		}
		tok, err := e.client.OAuthAccessToken(ctx, webID, webSecret, m["code"].(string))
		if err != nil {
			t.Fatal(err)
		}
		info, err := e.client.UserInfo(ctx, tok.AccessToken, tok.OpenID)
		if err != nil {
			t.Fatal(err)
		}
		if info.Nickname != "Band" || info.Sex != 1 || info.City != "Guangzhou" || info.HeadImgURL != "https://x/0" {
			t.Errorf("userinfo %+v", info)
		}
	})

	t.Run("phone code", func(t *testing.T) {
		status, m := postJSON(t, e, "/fake/phone-codes", `{"appid":"`+miniID+`","phone_number":"+8613800138000"}`)
		if status != http.StatusCreated {
			t.Fatalf("answer %d %v", status, m)
		}
		tok, err := e.client.StableToken(ctx, miniID, miniSecret, false)
		if err != nil {
			t.Fatal(err)
		}
		info, err := e.client.PhoneNumber(ctx, tok.AccessToken, m["code"].(string))
		if err != nil {
			t.Fatal(err)
		}
		if info.PurePhoneNumber != "13800138000" || info.CountryCode != "86" {
			t.Errorf("phone %+v", info)
		}
	})
}

func TestControlErrorsAndClock(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)

	status, _ := postJSON(t, e, "/fake/errors", `{"path":"/sns/jscode2session","errcode":45011,"count":2}`)
	if status != http.StatusNoContent {
		t.Fatalf("POST /fake/errors: %d", status)
	}
	status, _ = postJSON(t, e, "/fake/errors", `{"errcode":-1}`) // any path, once
	if status != http.StatusNoContent {
		t.Fatalf("POST /fake/errors: %d", status)
	}
	code, _ := e.mint(t, miniID, fakewechat.User{})
	for i, want := range []int{45011, 45011, -1, 0} {
		_, err := e.client.Code2Session(ctx, miniID, miniSecret, code)
		if got := wechat.ErrCode(err); got != want || (want == 0 && err != nil) {
			t.Fatalf("call %d: err %v, want errcode %d", i, err, want)
		}
	}

	status, _ = postJSON(t, e, "/fake/errors", `{"path":"/sns/jscode2session","errcode":-1,"count":3}`)
	if status != http.StatusNoContent {
		t.Fatal(status)
	}
	status, _ = postJSON(t, e, "/fake/errors", `{"path":"/sns/jscode2session","count":0}`)
	if status != http.StatusNoContent {
		t.Fatalf("cancel: %d", status)
	}
	code, _ = e.mint(t, miniID, fakewechat.User{})
	if _, err := e.client.Code2Session(ctx, miniID, miniSecret, code); err != nil {
		t.Fatalf("after cancel: %v", err)
	}

	code, _ = e.mint(t, miniID, fakewechat.User{})
	status, _ = postJSON(t, e, "/fake/clock", `{"advance":"6m"}`)
	if status != http.StatusNoContent {
		t.Fatalf("POST /fake/clock: %d", status)
	}
	_, err := e.client.Code2Session(ctx, miniID, miniSecret, code)
	wantErrCode(t, err, 40029)
}

func TestControlBadInput(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name, path, body string
		wantStatus       int
		wantErr          string
	}{
		{"codes: unknown appid", "/fake/codes", `{"appid":"wx0000000000000000"}`, 400, "unknown appid"},
		{"codes: no appid", "/fake/codes", `{}`, 400, "appid is required"},
		{"codes: unknown field", "/fake/codes", `{"appid":"` + miniID + `","open_id":"x"}`, 400, "unknown field"},
		{"codes: not JSON", "/fake/codes", `appid=x`, 400, "JSON"},
		{"codes: trailing data", "/fake/codes", `{"appid":"` + miniID + `"} {}`, 400, "nothing after"},
		{"codes: sex as text", "/fake/codes", `{"appid":"` + miniID + `","sex":"male"}`, 400, "JSON"},
		{"codes: bad sex", "/fake/codes", `{"appid":"` + miniID + `","sex":7}`, 400, "sex"},
		{"codes: oversize", "/fake/codes", `{"appid":"` + miniID + `","nickname":"` + strings.Repeat("x", 70<<10) + `"}`, 400, "JSON"},
		{"phone: web app", "/fake/phone-codes", `{"appid":"` + webID + `","phone_number":"13800138000"}`, 400, "mini-program"},
		{"phone: bad number", "/fake/phone-codes", `{"appid":"` + miniID + `","phone_number":"call me"}`, 400, "phone number"},
		{"errors: unknown path", "/fake/errors", `{"path":"/sns/jscode2sesion","errcode":-1}`, 400, "not one of"},
		{"errors: no errcode", "/fake/errors", `{"path":"/sns/jscode2session"}`, 400, "errcode"},
		{"errors: negative count", "/fake/errors", `{"errcode":-1,"count":-2}`, 400, "count"},
		{"clock: bad duration", "/fake/clock", `{"advance":"six minutes"}`, 400, "duration"},
		{"clock: backwards", "/fake/clock", `{"advance":"-1m"}`, 400, "positive"},
		{"unknown endpoint", "/fake/nope", `{}`, 404, "no such control endpoint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, m := postJSON(t, e, tt.path, tt.body)
			msg, _ := m["error"].(string)
			if status != tt.wantStatus || !strings.Contains(msg, tt.wantErr) {
				t.Errorf("answer %d %q, want %d with an error mentioning %q", status, msg, tt.wantStatus, tt.wantErr)
			}
		})
	}

	t.Run("wrong method", func(t *testing.T) {
		resp, err := http.Get(e.srv.URL + "/fake/codes")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != http.MethodPost {
			t.Errorf("GET /fake/codes: %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
		}
	})

	t.Run("a failed control call changes nothing", func(t *testing.T) {
		// The bad clock calls above must not have moved the clock.
		code, _ := e.mint(t, miniID, fakewechat.User{})
		e.fake.Advance(5*time.Minute - time.Second)
		if _, err := e.client.Code2Session(context.Background(), miniID, miniSecret, code); err != nil {
			t.Fatal(err)
		}
	})
}

func TestControlIndex(t *testing.T) {
	e := newEnv(t)
	for _, path := range []string{"/fake/", "/fake"} { // the second redirects
		resp, err := http.Get(e.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
		for _, want := range []string{"POST /fake/codes", "POST /fake/phone-codes", "POST /fake/errors", "POST /fake/clock",
			"GET  /connect/qrconnect", "POST /connect/confirm"} {
			if !strings.Contains(string(b), want) {
				t.Errorf("GET %s does not list %s", path, want)
			}
		}
	}
}
