package webhooksvc_test

import (
	"bytes"
	"encoding/base64"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/shared/freeaddr"

	"github.com/wxlogin/wxlogin/services/webhooks/webhooksvc"
	"github.com/wxlogin/wxlogin/services/webhooks/webhooktest"
	"github.com/wxlogin/wxlogin/shared/api/identity"
	"github.com/wxlogin/wxlogin/shared/logtest"
	"github.com/wxlogin/wxlogin/shared/poll"
)

// readme is the repository's README, read from the root (this package is
// services/webhooks/webhooksvc).
const readme = "../../../README.md"

// The README's Node and Python receivers, run as they are printed, take
// the service's real deliveries and refuse forged ones: the snippets
// verify what the service signs, with code that shares nothing with it.
func TestREADMEReceivers(t *testing.T) {
	raw, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	section, _, _ := strings.Cut(string(raw[bytes.Index(raw, []byte("## Webhooks\n")):]), "\n## ")
	b := newBus(t)
	type receiver struct {
		name, url, secret string
		out               *logtest.Buffer
	}
	var receivers []receiver
	for _, lang := range []struct{ name, fence, bin, file string }{
		{"node", "js", "node", "receiver.js"},
		{"python", "python", "python3", "receiver.py"},
	} {
		m := regexp.MustCompile("(?s)```" + lang.fence + "\n(.*?)```").FindStringSubmatch(section)
		if m == nil {
			t.Fatalf("README's Webhooks section has no %s snippet", lang.fence)
		}
		bin, err := exec.LookPath(lang.bin)
		if err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is not installed (.ci/run installs it)", lang.bin)
			}
			t.Skipf("%s not installed: this test runs where it is (always under CI=true)", lang.bin)
		}
		path := filepath.Join(t.TempDir(), lang.file)
		if err := os.WriteFile(path, []byte(m[1]), 0o600); err != nil {
			t.Fatal(err)
		}
		addr := freeaddr.Addr(t) // the snippet listens here
		_, port, _ := net.SplitHostPort(addr)
		r := receiver{name: lang.name, url: "http://" + addr + "/hook", secret: webhooktest.NewSecret(), out: &logtest.Buffer{}}
		cmd := exec.Command(bin, path)
		cmd.Env = append(os.Environ(), "PORT="+port, "WEBHOOK_SECRET="+r.secret)
		cmd.Stdout, cmd.Stderr = r.out, r.out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		poll.Until(t, 15*time.Second, "the "+lang.name+" receiver listening", func() bool {
			c, err := net.Dial("tcp", addr)
			if err == nil {
				c.Close()
			}
			return err == nil
		})
		receivers = append(receivers, r)
	}
	var eps []endpoint
	for _, r := range receivers {
		eps = append(eps, endpoint{Name: r.name, URL: r.url, Secret: r.secret, Events: []string{"user.created"}})
	}
	start(t, b.config(writeFile(t, eps...)))
	ev := b.publish(identity.EventUserCreated, "u1")
	for _, r := range receivers {
		poll.Until(t, wait, r.name+" receiver verified the delivery", func() bool {
			return strings.Contains(r.out.String(), "verified "+ev.ID+" user.created")
		})
	}

	// Forgeries, each answered 401: another key, a changed body, an old
	// timestamp, no signature.
	for _, r := range receivers {
		key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(r.secret, "whsec_"))
		if err != nil {
			t.Fatal(err)
		}
		other, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(webhooktest.NewSecret(), "whsec_"))
		now := time.Now().Unix()
		for name, f := range map[string]struct {
			key  []byte
			ts   int64
			body string
		}{
			"signed with another key": {other, now, `{"id":"f1","type":"user.created"}`},
			"an hour old":             {key, now - 3600, `{"id":"f2","type":"user.created"}`},
		} {
			sig := webhooksvc.Sign([][]byte{f.key}, "f", f.ts, []byte(f.body))
			if status := postRaw(t, r.url, "f", f.ts, sig, f.body); status != http.StatusUnauthorized {
				t.Errorf("%s receiver: a delivery %s answered %d, want 401", r.name, name, status)
			}
		}
		sig := webhooksvc.Sign([][]byte{key}, "f", now, []byte(`{"id":"f3","type":"user.created"}`))
		if status := postRaw(t, r.url, "f", now, sig, `{"id":"f3","type":"user.deleted"}`); status != http.StatusUnauthorized {
			t.Errorf("%s receiver: a changed body answered %d, want 401", r.name, status)
		}
		if status := postRaw(t, r.url, "f", now, "", `{"id":"f4","type":"user.created"}`); status != http.StatusUnauthorized {
			t.Errorf("%s receiver: no signature answered %d, want 401", r.name, status)
		}
		// The control: the same request, rightly signed, is taken.
		sig = webhooksvc.Sign([][]byte{other, key}, "f", now, []byte(`{"id":"f5","type":"user.created"}`))
		if status := postRaw(t, r.url, "f", now, sig, `{"id":"f5","type":"user.created"}`); status != http.StatusNoContent {
			t.Errorf("%s receiver: a valid delivery (second of two signatures) answered %d, want 204", r.name, status)
		}
		if strings.Contains(r.out.String(), "verified f1") || strings.Contains(r.out.String(), "verified f2") || strings.Contains(r.out.String(), "verified f3") {
			t.Errorf("%s receiver took a forgery:\n%s", r.name, r.out)
		}
	}
}

func postRaw(t *testing.T, url, id string, ts int64, sig, body string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(webhooksvc.HeaderID, id)
	req.Header.Set(webhooksvc.HeaderTimestamp, strconv.FormatInt(ts, 10))
	if sig != "" {
		req.Header.Set(webhooksvc.HeaderSignature, sig)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
