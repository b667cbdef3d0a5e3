package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/shared/natstest"
)

func TestRunCommands(t *testing.T) {
	s := natstest.Start(t)
	t.Setenv("WXLOGIN_NATS_URL", s.ClientURL())
	tests := []struct {
		name    string
		args    []string
		wantErr string
		wantKID bool
	}{
		{"rotate-key prints the new kid", []string{"rotate-key", "-delay", "0s"}, "", true},
		{"rotate-key again", []string{"rotate-key"}, "", true},
		{"bad flag", []string{"rotate-key", "-delay", "soon"}, "invalid value", false},
		{"unknown subcommand", []string{"rotate"}, "usage", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var stdout, stderr bytes.Buffer
			err := run(ctx, tc.args, &stdout, &stderr)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("run: %v (stderr %s)", err, stderr.String())
			}
			kid := strings.TrimSpace(stdout.String())
			if raw, err := base64.RawURLEncoding.DecodeString(kid); tc.wantKID && (err != nil || len(raw) != 32) {
				t.Fatalf("stdout %q is not a kid", stdout.String())
			}
		})
	}
}

func TestRunBadEnv(t *testing.T) {
	t.Setenv("WXLOGIN_JWT_ALG", "none")
	err := run(context.Background(), nil, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.HasPrefix(err.Error(), "WXLOGIN_JWT_ALG:") {
		t.Fatalf("err = %v, want one naming WXLOGIN_JWT_ALG", err)
	}
}
