package sessionsvc_test

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/wxlogin/wxlogin/shared/logtest"
	"github.com/wxlogin/wxlogin/shared/natstest"

	"github.com/wxlogin/wxlogin/services/session/sessionsvc"
	"github.com/wxlogin/wxlogin/shared/poll"
)

// The NATS URL's credentials (user and password, or a token written as the
// user) never show in the logged or printed configuration.
func TestConfigRedactsNATSURL(t *testing.T) {
	tests := []struct {
		name, url string
		secrets   []string
		want      string
	}{
		{"user and password", "nats://alice:pa55word@nats1:4222", []string{"alice", "pa55word"}, "nats://redacted@nats1:4222"},
		{"token as user", "nats://s3cr3t-token@nats1:4222", []string{"s3cr3t-token"}, "nats://redacted@nats1:4222"},
		{"list, one with credentials", "nats://nats1:4222, tls://bob:hunter2@nats2:4222",
			[]string{"bob", "hunter2"}, "nats://nats1:4222,tls://redacted@nats2:4222"},
		{"no scheme", "carol:letmein@nats3:4222", []string{"carol", "letmein"}, "redacted@nats3:4222"},
		{"does not parse as a URL", "nats://dave:50%zz/x#@nats4:4222", []string{"dave", "50%zz"}, "nats://redacted@nats4:4222"},
		{"password with ://", "erin:a://b@nats5:4222", []string{"erin", "a://b"}, "redacted@nats5:4222"},
		{"no credentials", "nats://nats6:4222", nil, "nats://nats6:4222"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := sessionsvc.DefaultConfig()
			cfg.NATSURL = tc.url
			var text, js strings.Builder
			slog.New(slog.NewTextHandler(&text, nil)).Info("start", "config", cfg)
			slog.New(slog.NewJSONHandler(&js, nil)).Info("start", "config", cfg)
			outs := map[string]string{"text log": text.String(), "json log": js.String(), "%v": fmt.Sprint(cfg), "%+v": fmt.Sprintf("%+v", cfg)}
			for name, out := range outs {
				for _, s := range tc.secrets {
					if strings.Contains(out, s) {
						t.Errorf("%s shows %q: %s", name, s, out)
					}
				}
				if !strings.Contains(out, tc.want) {
					t.Errorf("%s lacks %q: %s", name, tc.want, out)
				}
			}
		})
	}
}

// Session's start-up logs show the apps (names and appids) but no secret of
// the apps file, which it shares with identity; and it drops the secrets.
func TestStartupLogsNoAppSecret(t *testing.T) {
	const appSecret = "apps-file-secret-0123456789"
	const natsPassword = "nats-password-9876"
	file := filepath.Join(t.TempDir(), "apps.yaml")
	body := "- {name: shop, kind: miniprogram, appid: wxshop00000000001, secret: " + appSecret + "}\n" +
		"- {name: site, kind: web, appid: wxsite00000000001, secret: " + appSecret + "}\n"
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	s := natstest.Start(t)
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			logs := &logtest.Buffer{}
			var h slog.Handler = slog.NewTextHandler(logs, nil)
			if format == "json" {
				h = slog.NewJSONHandler(logs, nil)
			}
			cfg := config(s)
			// The test server has no auth, so it accepts any credentials.
			cfg.NATSURL = strings.Replace(s.ClientURL(), "nats://", "nats://svc:"+natsPassword+"@", 1)
			cfg.AppsFile = file
			nc := natstest.Connect(t, s)
			startWithLog(t, cfg, nc, slog.New(h))
			out := logs.String()
			for _, secret := range []string{appSecret, natsPassword} {
				if strings.Contains(out, secret) {
					t.Errorf("a secret is logged:\n%s", out)
				}
			}
			for _, want := range []string{"session service starting", "wxshop00000000001", "wxsite00000000001"} {
				if !strings.Contains(out, want) {
					t.Errorf("%q not logged:\n%s", want, out)
				}
			}
		})
	}
	t.Run("secrets dropped", func(t *testing.T) {
		cfg := sessionsvc.DefaultConfig()
		cfg.AppsFile = file
		reg, err := cfg.Apps()
		if err != nil {
			t.Fatal(err)
		}
		all := reg.All()
		if len(all) != 2 {
			t.Fatalf("apps %v", all)
		}
		for _, a := range all {
			if a.Secret != "" {
				t.Errorf("app %s keeps its secret", a.Name)
			}
		}
	})
}

// After a reconnect the logged server URL still hides a token written as
// the user (nats.go's ConnectedUrlRedacted hides only a password).
func TestReconnectLogHidesToken(t *testing.T) {
	const token = "nats-token-5555"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	// The replacement server outlives the service (cleanups run last
	// first), so the service's drain at the end finds it up.
	var second *server.Server
	t.Cleanup(func() {
		if second != nil {
			second.Shutdown()
		}
	})
	serve := func() *server.Server {
		s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
		if err != nil {
			t.Fatal(err)
		}
		s.Start()
		if !s.ReadyForConnections(10 * time.Second) {
			t.Fatal("nats-server not ready")
		}
		return s
	}
	first := serve()
	t.Cleanup(first.Shutdown)
	logs := &logtest.Buffer{}
	cfg := config(first)
	cfg.NATSURL = fmt.Sprintf("nats://%s@127.0.0.1:%d", token, port)
	nc := natstest.Connect(t, first)
	startWithLog(t, cfg, nc, slog.New(slog.NewTextHandler(logs, nil)))

	first.Shutdown()
	second = serve()
	poll.UntilNil(t, 15*time.Second, "the reconnect to be logged", func() error {
		if out := logs.String(); !strings.Contains(out, "NATS reconnected") {
			return fmt.Errorf("not in the log:\n%s", out)
		}
		return nil
	})
	if out := logs.String(); strings.Contains(out, token) {
		t.Errorf("the token is logged:\n%s", out)
	}
}

// The start line shows every setting: a field added to Config is logged.
func TestConfigLogsEveryField(t *testing.T) {
	logtest.LogsEveryField(t, sessionsvc.Config{})
}
