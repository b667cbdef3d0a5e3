package webhooksvc

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/shared/logtest"
)

// secretA is a valid secret; its base64 part must never show in an error.
const secretA = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func writeEndpoints(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadEndpoints(t *testing.T) {
	path := writeEndpoints(t, "webhooks.yaml", `
- name: crm
  url: https://crm.example.com/hooks/wxlogin?token=abc
  secret: `+secretA+`
  events: [user.created, user.bound]
  concurrency: 2
  timeout: 5s
- url: http://10.0.0.7:8080/in
  secret: "`+secretA+` whsec_`+strings.Repeat("A", 43)+`="
  events: [oa.*, admin.>]
- url: http://hooks.internal/all
  secret: `+secretA+`
  events: [">"]
`)
	eps, err := LoadEndpoints(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(eps) != 3 {
		t.Fatalf("%d endpoints", len(eps))
	}
	crm, second, all := eps[0], eps[1], eps[2]
	if crm.Name != "crm" || crm.Concurrency != 2 || crm.Timeout != 5*time.Second || crm.URL.RawQuery != "token=abc" ||
		strings.Join(crm.subjects(), " ") != "wxlogin.events.user.created wxlogin.events.user.bound" {
		t.Errorf("crm = %+v %v", crm, crm.subjects())
	}
	if !strings.HasPrefix(second.Name, "url_") || second.Concurrency != defaultConcurrency || second.Timeout != defaultTimeout || len(second.keys) != 2 {
		t.Errorf("second = %+v, %d keys", second, len(second.keys))
	}
	if again, _ := LoadEndpoints(path); again[1].Name != second.Name {
		t.Error("a derived name changes between loads: the consumer would start over")
	}
	if len(all.Events) != 0 || all.subjects()[0] != "wxlogin.events.>" {
		t.Errorf("> = %v", all.subjects())
	}
	// What logs may show: name and host, not the path, query or secret.
	if s := crm.String(); strings.Contains(s, "token") || strings.Contains(s, "hooks/wxlogin") || strings.Contains(s, "MfKQ") {
		t.Errorf("String() = %s", s)
	}
	// JSON is YAML too.
	eps, err = LoadEndpoints(writeEndpoints(t, "webhooks.json", `[{"url":"https://a.example/h","secret":"`+secretA+`"}]`))
	if err != nil || len(eps) != 1 {
		t.Fatalf("JSON: %v", err)
	}
}

func TestLoadEndpointsErrors(t *testing.T) {
	ep := func(fields string) string { return "- " + strings.ReplaceAll(fields, "; ", "\n  ") + "\n" }
	good := "url: https://a.example/h; secret: " + secretA
	tests := []struct{ name, content, want string }{
		{"not YAML", "url: [", "not a YAML or JSON list"},
		{"a map, not a list", "url: https://a.example/h\n", "not a YAML or JSON list"},
		{"empty", "", "lists no endpoint"},
		{"misspelt key", ep(good + "; evnets: [user.created]"), "evnets"},
		{"no url", ep("secret: " + secretA), `endpoint 1: url: missing`},
		{"bad scheme", ep("name: crm; url: ftp://a.example/h; secret: " + secretA), `endpoint 1 ("crm"): url: must be an http:// or https:// URL`},
		{"not a URL", ep("url: 'https://a b%zz'; secret: " + secretA), "url: not a URL"},
		{"relative", ep("url: /hook; secret: " + secretA), "url: must be an http"},
		{"user info", ep("url: https://u:p@a.example/h; secret: " + secretA), "url: must not carry user information"},
		{"fragment", ep("url: 'https://a.example/h#x'; secret: " + secretA), "must not have a fragment"},
		{"no secret", ep("url: https://a.example/h"), "endpoint 1: secret: missing"},
		{"no prefix", ep("url: https://a.example/h; secret: MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), "secret 1 of 1: must start with whsec_"},
		{"not base64", ep("url: https://a.example/h; secret: whsec_!!!not-base64!!!"), "is not base64"},
		{"too short", ep("url: https://a.example/h; secret: whsec_c2hvcnQ="), "decodes to 5 bytes, want 24 to 64"},
		{"second secret bad", ep("url: https://a.example/h; secret: " + secretA + " whsec_c2hvcnQ="), "secret 2 of 2"},
		{"unknown type", ep(good + "; events: [user.create]"), `"user.create" is not a type wxlogin publishes`},
		{"bad type", ep(good + "; events: ['User Created']"), "is not an event type"},
		{"overlap", ep(good + "; events: [user.*, user.created]"), `"user.*" and "user.created" overlap`},
		{"all and one", ep(good + "; events: ['>', oa.message]"), "overlap"},
		{"bad name", ep(good + "; name: 'c r m'"), "name: must be 1 to 64"},
		{"bad concurrency", ep(good + "; concurrency: 500"), "concurrency: 500 is outside 1..64"},
		{"bad timeout", ep(good + "; timeout: 2h"), `timeout: "2h" is not a duration within 1s..1m0s`},
		{"twice", ep(good+"; name: crm") + ep(good+"; name: crm"), `endpoint 2 ("crm"): name "crm" is also endpoint 1's`},
		{"same URL twice", ep(good) + ep(good), "endpoint 2: name"},
		{"a secret in the wrong place", ep(good + "; concurrency: " + secretA), "whsec_***"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := writeEndpoints(t, "webhooks.yaml", tc.content)
			_, err := LoadEndpoints(path)
			if err == nil {
				t.Fatal("accepted")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "WXLOGIN_WEBHOOKS_FILE: "+path) || !strings.Contains(msg, tc.want) {
				t.Errorf("error %q, want WXLOGIN_WEBHOOKS_FILE: %s…%s", msg, path, tc.want)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error %q is more than one line", msg)
			}
			for _, secret := range []string{"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "c2hvcnQ", "u:p@"} {
				if strings.Contains(msg, secret) {
					t.Errorf("error %q shows a secret", msg)
				}
			}
		})
	}
	if _, err := LoadEndpoints(filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !strings.HasPrefix(err.Error(), "WXLOGIN_WEBHOOKS_FILE: open ") {
		t.Errorf("missing file: %v", err)
	}
}

// The test vector of the Standard Webhooks specification.
func TestSignStandardWebhooksVector(t *testing.T) {
	keys, err := decodeSecrets(secretA)
	if err != nil {
		t.Fatal(err)
	}
	got := Sign(keys, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
	// Rotating: one signature per secret, space-separated.
	two, err := decodeSecrets(secretA + " whsec_" + strings.Repeat("A", 43) + "=")
	if err != nil {
		t.Fatal(err)
	}
	if sigs := strings.Fields(Sign(two, "id", 1, []byte("{}"))); len(sigs) != 2 || sigs[0] == sigs[1] {
		t.Errorf("two secrets sign %v", sigs)
	}
}

func TestRetryDelay(t *testing.T) {
	var c Config
	for n, want := range map[uint64]time.Duration{0: time.Second, 1: time.Second, 2: 5 * time.Second, 9: 4 * time.Hour, 50: 4 * time.Hour} {
		if got := c.retryDelay(n); got != want {
			t.Errorf("retryDelay(%d) = %s, want %s", n, got, want)
		}
	}
}

func TestSubjectsOverlap(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"user.created", "user.created", true},
		{"user.created", "user.bound", false},
		{"user.*", "user.created", true},
		{"user.*", "user", false},
		{"user.>", "user", false},
		{"user.>", "user.a.b", true},
		{">", "oa.message", true},
		{"*.created", "user.*", true},
		{"oa.*", "user.*", false},
		{"admin.user.*", "admin.session.revoke", false},
	} {
		if got := subjectsOverlap(tc.a, tc.b); got != tc.want {
			t.Errorf("subjectsOverlap(%s, %s) = %v", tc.a, tc.b, got)
		}
	}
}

// The start line shows every setting: a field added to Config is logged.
func TestConfigLogsEveryField(t *testing.T) {
	logtest.LogsEveryField(t, Config{})
}
