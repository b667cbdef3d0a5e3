package gatewaysvc_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/services/gateway/gatewaysvc"
	"github.com/wxlogin/wxlogin/shared/logtest"
	"github.com/wxlogin/wxlogin/shared/poll"
)

// TestConfigLogRedactsNATSCredentials: the configuration is logged at start;
// whatever userinfo a NATS URL carries (a password, a token written as the
// user, a user name) must not reach the log.
func TestConfigLogRedactsNATSCredentials(t *testing.T) {
	cases := []struct {
		name, url string
		secrets   []string
		want      string // in the logged nats_url
	}{
		{"user and password", "nats://alice:s3cret-pass@nats.example:4222", []string{"alice", "s3cret-pass"}, "nats://redacted@nats.example:4222"},
		{"token as user", "nats://tok-0123456789abcdef@nats.example:4222", []string{"tok-0123456789abcdef"}, "nats://redacted@nats.example:4222"},
		{"several URLs", "nats://u1:p1-secret@a.example:4222, tls://tok-second@b.example:4222",
			[]string{"u1", "p1-secret", "tok-second"}, "nats://redacted@a.example:4222,tls://redacted@b.example:4222"},
		{"unparseable URL", "nats://bad user:p%zz-secret@c.example:4222", []string{"bad user", "p%zz-secret"}, "nats://redacted@c.example:4222"},
		{"no scheme", "tok-noscheme:pw-noscheme@d.example:4222", []string{"tok-noscheme", "pw-noscheme"}, "redacted@d.example:4222"},
		{"no userinfo", "nats://e.example:4222", nil, "nats://e.example:4222"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(slog.NewJSONHandler(&buf, nil))
			cfg := gatewaysvc.Config{NATSURL: c.url, JWTSecret: "jwt-secret-of-at-least-32-bytes-long"}
			log.Info("gateway listening", "config", cfg)
			out := buf.String() + fmt.Sprintf(" %v %+v %s", cfg, cfg, cfg)
			for _, s := range append(c.secrets, "jwt-secret-of-at-least-32-bytes-long") {
				if strings.Contains(out, s) {
					t.Errorf("%q is in the log line: %s", s, out)
				}
			}
			if !strings.Contains(out, `"nats_url":"`+c.want+`"`) {
				t.Errorf("nats_url not logged as %q: %s", c.want, out)
			}
		})
	}
}

// TestStartupLogsHideNATSToken runs a gateway whose NATS URL carries a token
// as its user: neither the configuration line nor the connection lines may
// show it.
func TestStartupLogsHideNATSToken(t *testing.T) {
	e := newEnv(t)
	const token = "nats-token-0123456789abcdef"
	base := e.up(func(c *gatewaysvc.Config) {
		c.NATSURL = strings.Replace(e.ns.ClientURL(), "nats://", "nats://"+token+"@", 1)
	})
	poll.Until(t, 5*time.Second, "the NATS connected line", func() bool { return strings.Contains(e.logs.String(), "NATS connected") })
	get(t, base+"/readyz", nil)
	logs := e.logs.String()
	if strings.Contains(logs, token) {
		t.Errorf("the NATS token is in the logs:\n%s", logs)
	}
	if !strings.Contains(logs, "redacted@127.0.0.1") {
		t.Errorf("no redacted NATS URL in the logs:\n%s", logs)
	}
}

// The start line shows every setting: a field added to Config is logged.
func TestConfigLogsEveryField(t *testing.T) {
	logtest.LogsEveryField(t, gatewaysvc.Config{})
}
