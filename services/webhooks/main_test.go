package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A bad configuration stops the binary at start with one line naming the
// variable (and, for the endpoints file, the entry).
func TestRunBadConfiguration(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "webhooks.yaml")
	if err := os.WriteFile(bad, []byte("- name: crm\n  url: https://crm.example/h\n  secret: not-a-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"no file", nil, nil, "WXLOGIN_WEBHOOKS_FILE: must be set"},
		{"bad file", map[string]string{"WXLOGIN_WEBHOOKS_FILE": bad}, nil, `WXLOGIN_WEBHOOKS_FILE: ` + bad + `: endpoint 1 ("crm"): secret: secret 1 of 1: must start with whsec_`},
		{"bad file, replay", map[string]string{"WXLOGIN_WEBHOOKS_FILE": bad}, []string{"replay"}, "WXLOGIN_WEBHOOKS_FILE: " + bad},
		{"max age", map[string]string{"WXLOGIN_WEBHOOKS_FILE": bad, "WXLOGIN_WEBHOOKS_MAX_AGE": "30d"}, nil, "WXLOGIN_WEBHOOKS_MAX_AGE:"},
		{"max age too long", map[string]string{"WXLOGIN_WEBHOOKS_FILE": bad, "WXLOGIN_WEBHOOKS_MAX_AGE": "200h"}, nil, "WXLOGIN_WEBHOOKS_MAX_AGE: 200h0m0s is outside 1s..168h0m0s"},
		{"replicas", map[string]string{"WXLOGIN_WEBHOOKS_FILE": bad, "WXLOGIN_NATS_REPLICAS": "9"}, nil, "WXLOGIN_NATS_REPLICAS:"},
		{"metrics address", map[string]string{"WXLOGIN_WEBHOOKS_FILE": bad, "WXLOGIN_METRICS_ADDR": "9100"}, nil, "WXLOGIN_METRICS_ADDR:"},
		{"unknown command", map[string]string{"WXLOGIN_WEBHOOKS_FILE": bad}, []string{"deliver"}, "usage: webhooks"},
		{"replay argument", map[string]string{"WXLOGIN_WEBHOOKS_FILE": bad}, []string{"replay", "crm"}, "usage: webhooks replay"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), tc.args, &stdout, &stderr)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %v, want one line starting %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "not-a-secret") || strings.Contains(stderr.String(), "not-a-secret") {
				t.Error("the secret shows")
			}
		})
	}
}
