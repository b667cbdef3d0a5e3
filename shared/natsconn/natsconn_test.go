package natsconn_test

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wxlogin/wxlogin/shared/logtest"
	"github.com/wxlogin/wxlogin/shared/natsauth"
	"github.com/wxlogin/wxlogin/shared/natsconn"
	"github.com/wxlogin/wxlogin/shared/natstest"
)

const secret = "s3cr3t-Pa55"

func TestValidate(t *testing.T) {
	creds := filepath.Join(t.TempDir(), "x.creds")
	if err := os.WriteFile(creds, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		url     string
		c       natsconn.Credentials
		wantErr string
	}{
		{"none", "nats://h:4222", natsconn.Credentials{}, ""},
		{"user and password", "nats://h:4222", natsconn.Credentials{User: "gateway", Password: secret}, ""},
		{"in the URL", "nats://gateway:" + secret + "@h:4222", natsconn.Credentials{}, ""},
		{"creds", "nats://h:4222", natsconn.Credentials{CredsFile: creds}, ""},
		{"user alone", "nats://h:4222", natsconn.Credentials{User: "gateway"}, "WXLOGIN_NATS_PASSWORD"},
		{"password alone", "nats://h:4222", natsconn.Credentials{Password: secret}, "WXLOGIN_NATS_USER"},
		{"creds and user", "nats://h:4222", natsconn.Credentials{User: "gateway", Password: secret, CredsFile: creds}, "WXLOGIN_NATS_CREDS"},
		{"URL and user", "nats://a:b@h:4222", natsconn.Credentials{User: "gateway", Password: secret}, "WXLOGIN_NATS_URL"},
		{"missing creds file", "nats://h:4222", natsconn.Credentials{CredsFile: creds + ".gone"}, "WXLOGIN_NATS_CREDS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Validate(tt.url)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate = %v", err)
			case tt.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.wantErr)):
				t.Fatalf("Validate = %v, want an error naming %s", err, tt.wantErr)
			case err != nil && strings.Contains(err.Error(), secret):
				t.Fatalf("error shows the password: %v", err)
			}
		})
	}
}

// Neither %v nor a log line of the credentials shows the password.
func TestCredentialsNeverShowThePassword(t *testing.T) {
	c := natsconn.Credentials{User: "gateway", Password: secret}
	var buf logtest.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "nats_auth", c)
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%+v", struct{ A natsconn.Credentials }{c}), buf.String()} {
		if strings.Contains(s, secret) || !strings.Contains(s, "gateway") {
			t.Errorf("%q: shows the password or not the user", s)
		}
	}
}

// Each way to give credentials works against a secured server, the inbox
// prefix is the role's, and a refused or failed connect names no secret
// in its error or the log.
func TestConnect(t *testing.T) {
	s := natstest.StartSecured(t)
	pw := s.Passwords[natsauth.Events]
	var buf logtest.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	hostPort := strings.TrimPrefix(s.ClientURL(), "nats://")
	connect := func(url string, c natsconn.Credentials) (*nats.Conn, error) {
		return natsconn.Connect(natsconn.Options{URL: url, Credentials: c, Name: "test", Role: natsauth.Events, Log: log, DrainTimeout: time.Second})
	}

	for name, tc := range map[string]struct {
		url string
		c   natsconn.Credentials
	}{
		"user and password": {s.ClientURL(), natsconn.Credentials{User: natsauth.Events, Password: pw}},
		"URL userinfo":      {"nats://" + natsauth.Events + ":" + pw + "@" + hostPort, natsconn.Credentials{}},
	} {
		t.Run(name, func(t *testing.T) {
			nc, err := connect(tc.url, tc.c)
			if err != nil {
				t.Fatal(err)
			}
			defer natsconn.Drain(nc, time.Second, log)
			if got := nc.NewInbox(); !strings.HasPrefix(got, "_INBOX_events.") {
				t.Errorf("inbox %q, want _INBOX_events.…", got)
			}
			// The inbox is the one the server lets events subscribe to: a request
			// to JetStream gets its answer.
			if _, err := nc.Request("$JS.API.STREAM.INFO.WXLOGIN_EVENTS", nil, 2*time.Second); err != nil {
				t.Errorf("request as events: %v", err)
			}
		})
	}

	t.Run("refusals name no secret", func(t *testing.T) {
		for name, tc := range map[string]struct {
			url  string
			c    natsconn.Credentials
			want error
		}{
			"wrong password": {s.ClientURL(), natsconn.Credentials{User: natsauth.Events, Password: secret}, nats.ErrAuthorization},
			"wrong in URL":   {"nats://events:" + secret + "@" + hostPort, natsconn.Credentials{}, nats.ErrAuthorization},
			"bad URL":        {"nats://events:" + secret + "%zz@" + hostPort, natsconn.Credentials{}, nil},
			"no server":      {"nats://events:" + secret + "@127.0.0.1:1", natsconn.Credentials{}, nats.ErrNoServers},
		} {
			nc, err := connect(tc.url, tc.c)
			if err == nil {
				nc.Close()
				t.Errorf("%s: connected", name)
				continue
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("%s: %v, want %v", name, err, tc.want)
			}
			if strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), "WXLOGIN_NATS_URL") {
				t.Errorf("%s: error %q shows the password or does not name WXLOGIN_NATS_URL", name, err)
			}
		}
		if strings.Contains(buf.String(), secret) || strings.Contains(buf.String(), pw) {
			t.Errorf("a password in the log:\n%s", buf.String())
		}
	})
}
