package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/shared/logtest"
	"github.com/wxlogin/wxlogin/shared/wechat"
	"github.com/wxlogin/wxlogin/shared/wechat/fakewechat"
)

func TestLoadConfig(t *testing.T) {
	tests := []struct {
		name    string
		environ map[string]string
		check   func(t *testing.T, cfg config)
		wantErr string
	}{
		{"defaults", map[string]string{}, func(t *testing.T, cfg config) {
			if cfg.Addr != "127.0.0.1:9090" || cfg.level != slog.LevelInfo || len(cfg.apps) != len(fakewechat.DefaultApps()) || cfg.LoadCodes ||
				cfg.apps[0].AppID != fakewechat.DevMiniProgramAppID || cfg.apps[1].AppID != fakewechat.DevWebAppID ||
				cfg.OAAppID != fakewechat.DevOAAppID {
				t.Errorf("config %+v", cfg)
			}
		}, ""},
		{"everything set", map[string]string{"FAKEWECHAT_ADDR": ":9999", "WXLOGIN_LOG_LEVEL": "debug",
			"FAKEWECHAT_APPS": "wxa:sa:miniprogram,wxb:sb:web,wxc:sc:web"}, func(t *testing.T, cfg config) {
			if cfg.Addr != ":9999" || cfg.level != slog.LevelDebug || len(cfg.apps) != 3 || cfg.apps[2] != (fakewechat.App{AppID: "wxc", Secret: "sc", Kind: "web"}) {
				t.Errorf("config %+v", cfg)
			}
		}, ""},
		{"bad apps", map[string]string{"FAKEWECHAT_APPS": "wxa:topsecret"}, nil, "FAKEWECHAT_APPS"},
		{"bad kind", map[string]string{"FAKEWECHAT_APPS": "wxa:topsecret:desktop"}, nil, "FAKEWECHAT_APPS"},
		{"official account domain", map[string]string{"FAKEWECHAT_APPS": "wxa:sa:officialaccount,wxb:sb:web", "FAKEWECHAT_OA_DOMAIN": "h5.example.com"},
			func(t *testing.T, cfg config) {
				if cfg.apps[0].Domain != "h5.example.com" || cfg.apps[1].Domain != "" {
					t.Errorf("config %+v", cfg)
				}
			}, ""},
		{"bad official account domain", map[string]string{"FAKEWECHAT_OA_DOMAIN": "https://h5.example.com/"}, nil, "FAKEWECHAT_OA_DOMAIN"},
		{"official account server", map[string]string{"FAKEWECHAT_APPS": "wxa:sa:miniprogram,wxo:so:officialaccount",
			"FAKEWECHAT_OA_SERVER_URL": "http://127.0.0.1:8080/api/v1/wechat/oa/wxo/events", "FAKEWECHAT_OA_TOKEN": "tok123"}, func(t *testing.T, cfg config) {
			if cfg.OAAppID != "wxo" || cfg.OAToken != "tok123" {
				t.Errorf("config %+v", cfg)
			}
		}, ""},
		{"server URL without a token", map[string]string{"FAKEWECHAT_OA_SERVER_URL": "http://127.0.0.1:8080/x"}, nil, "FAKEWECHAT_OA_TOKEN"},
		{"public URL", map[string]string{"FAKEWECHAT_PUBLIC_URL": "http://192.168.1.20:9090"}, func(t *testing.T, cfg config) {
			if cfg.PublicURL != "http://192.168.1.20:9090" {
				t.Errorf("config %+v", cfg)
			}
		}, ""},
		{"load mode", map[string]string{"FAKEWECHAT_LOAD_CODES": "true"}, func(t *testing.T, cfg config) {
			if !cfg.LoadCodes {
				t.Errorf("config %+v", cfg)
			}
		}, ""},
		{"bad public URL", map[string]string{"FAKEWECHAT_PUBLIC_URL": "192.168.1.20:9090"}, nil, "FAKEWECHAT_PUBLIC_URL"},
		{"bad addr", map[string]string{"FAKEWECHAT_ADDR": "9090"}, nil, "FAKEWECHAT_ADDR"},
		{"bad log level", map[string]string{"WXLOGIN_LOG_LEVEL": "loud"}, nil, "WXLOGIN_LOG_LEVEL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := loadConfig(tt.environ)
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr+":") {
					t.Fatalf("err = %v, want one naming %s", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "topsecret") {
					t.Errorf("error %q shows a secret", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, cfg)
		})
	}
}

func TestServe(t *testing.T) {
	cfg, err := loadConfig(map[string]string{"FAKEWECHAT_APPS": "wxa:topsecret:miniprogram,wxw:websecret:web",
		"FAKEWECHAT_PUBLIC_URL": "http://phone.example:9090"})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := &logtest.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, cfg, slog.New(slog.NewJSONHandler(logs, nil)), ln)
	}()
	base := "http://" + ln.Addr().String()

	// Mint a code over HTTP, exchange it with the real client.
	resp, err := http.Post(base+"/fake/codes", "application/json", strings.NewReader(`{"appid":"wxa"}`))
	if err != nil {
		t.Fatal(err)
	}
	var minted struct{ Code, OpenID string }
	err = json.NewDecoder(resp.Body).Decode(&minted)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /fake/codes: %d %v", resp.StatusCode, err)
	}
	client := wechat.New(wechat.Options{APIBase: base, OpenBase: base})
	sess, err := client.Code2Session(context.Background(), "wxa", "topsecret", minted.Code)
	if err != nil || sess.OpenID != minted.OpenID {
		t.Fatalf("Code2Session = %+v, %v", sess, err)
	}
	// The QR page encodes the configured public URL.
	qr := client.QRConnectURL("wxw", "https://site.example/cb", "st")
	resp, err = http.Get(qr) // the #wechat_redirect fragment stays in the client, as in a browser
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), `href="http://phone.example:9090/connect/confirm?uuid=`) {
		t.Fatalf("QR page %d does not link the phone page at FAKEWECHAT_PUBLIC_URL: %s", resp.StatusCode, page)
	}
	// The devstack apps are not configured here.
	if _, err := client.Code2Session(context.Background(), fakewechat.DevMiniProgramAppID, fakewechat.DevMiniProgramSecret, "x"); wechat.ErrCode(err) != 40013 {
		t.Fatalf("unconfigured app: %v", err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v after cancel", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not return after cancel")
	}
	if _, err := http.Get(base + "/fake/"); err == nil {
		t.Error("still serving after shutdown")
	}
	out := logs.String()
	if !strings.Contains(out, `"appid":"wxa"`) || !strings.Contains(out, "listening") {
		t.Errorf("logs lack the app or the address: %s", out)
	}
	if strings.Contains(out, "topsecret") || strings.Contains(out, minted.Code) {
		t.Error("logs contain a secret or a code")
	}
}

func TestRunBadConfig(t *testing.T) {
	t.Setenv("FAKEWECHAT_APPS", "nonsense")
	err := run(context.Background())
	if err == nil || !strings.HasPrefix(err.Error(), "FAKEWECHAT_APPS:") {
		t.Fatalf("run = %v", err)
	}
}

func TestRunAddrInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	t.Setenv("FAKEWECHAT_ADDR", ln.Addr().String())
	t.Setenv("WXLOGIN_LOG_LEVEL", "error")
	err = run(context.Background())
	var opErr *net.OpError
	if !errors.As(err, &opErr) || !strings.Contains(err.Error(), "FAKEWECHAT_ADDR") {
		t.Fatalf("run = %v, want a listen error naming FAKEWECHAT_ADDR", err)
	}
}
