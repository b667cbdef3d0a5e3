package main

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/shared/freeaddr"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/services/webhooks/webhooksvc"
	"github.com/wxlogin/wxlogin/services/webhooks/webhooktest"
	"github.com/wxlogin/wxlogin/shared/api/identity"
	"github.com/wxlogin/wxlogin/shared/api/webhooks"
	"github.com/wxlogin/wxlogin/shared/natsauth"
	"github.com/wxlogin/wxlogin/shared/wechat/fakewechat"
)

// webhookReceivers are a receiver of user.created and one of
// user.logged_in, and the WXLOGIN_WEBHOOKS_FILE naming them.
type webhookReceivers struct {
	created, logins *webhooktest.Receiver
	secrets         []string
	file            string
}

func newWebhookReceivers(t *testing.T) *webhookReceivers {
	t.Helper()
	w := &webhookReceivers{secrets: []string{webhooktest.NewSecret(), webhooktest.NewSecret()}}
	w.created, w.logins = webhooktest.NewReceiver(t, w.secrets[0]), webhooktest.NewReceiver(t, w.secrets[1])
	w.file = filepath.Join(t.TempDir(), "webhooks.yaml")
	yaml := "- name: created\n  url: " + w.created.URL + "\n  secret: " + w.secrets[0] + "\n  events: [user.created]\n" +
		"- name: logins\n  url: " + w.logins.URL + "\n  secret: " + w.secrets[1] + "\n  events: [user.logged_in]\n"
	if err := os.WriteFile(w.file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return w
}

// check waits for user's one signed user.created, then, after a second
// login, for its two user.logged_in, and requires that user.created came
// once: by then the consumer had passed where a second one would be.
func (w *webhookReceivers) check(t *testing.T, user string, loginAgain func()) {
	t.Helper()
	began := time.Now()
	until(t, 10*time.Second, "the user.created webhook", func() bool { return len(w.created.Accepted()) > 0 })
	t.Logf("user.created reached the receiver %s after the login answered", time.Since(began).Round(time.Millisecond))
	d := w.created.Accepted()[0]
	if d.Event.Type != identity.EventUserCreated || d.Event.User.ID != user || d.ID != d.Event.ID || d.ID == "" {
		t.Errorf("delivery: webhook-id %q, event %+v; want user.created of %s with its id", d.ID, d.Event, user)
	}
	loginAgain()
	until(t, 10*time.Second, "both logins' user.logged_in webhooks", func() bool { return len(w.logins.Accepted()) >= 2 })
	var ids []string
	for _, r := range []*webhooktest.Receiver{w.created, w.logins} {
		for _, d := range r.Deliveries() {
			if !d.Valid {
				t.Errorf("a delivery's signature does not verify: %v", d.Header)
			}
			ids = append(ids, d.ID)
		}
	}
	if got := w.created.Deliveries(); len(got) != 1 {
		t.Errorf("%d user.created deliveries, want 1", len(got))
	}
	if slices.Sort(ids); len(slices.Compact(ids)) != 3 {
		t.Errorf("webhook-ids %v: want three events, each with its own", ids)
	}
}

// With the services as separate processes, and the webhooks binary as the
// NATS user events on deploy/nats/nats.conf, a new user's login produces one
// signed user.created at the receiver within seconds; one who logs in while
// the receiver is down gets it there, once, when the receiver is back.
func TestWebhooksAsAProcess(t *testing.T) {
	p := startProcs(t)
	w := newWebhookReceivers(t)
	ops := p.startWebhooks(w.file)
	user := userID(t, p.login("o_webhook_user"))
	w.check(t, user, func() { p.login("o_webhook_user") })

	r := do(t, http.MethodGet, ops+"/metrics", "", "", nil)
	if !strings.Contains(r.raw, `wxlogin_webhooks_deliveries_total{endpoint="created"} 1`) {
		t.Errorf("metrics do not count the delivery:\n%s", r.raw)
	}

	// The user.created receiver goes down (its address refuses
	// connections); a new user who logs in meanwhile is announced to it,
	// once and signed, when it is back at the same address.
	addr := strings.TrimSuffix(strings.TrimPrefix(w.created.URL, "http://"), "/hook")
	w.created.Close()
	late := userID(t, p.login("o_webhook_while_down"))
	refused := webhooksvc.NameFailures + `{endpoint="created",reason="network"}`
	until(t, 10*time.Second, "a delivery to the receiver that is down", func() bool { return metric(t, ops, refused) >= 1 })
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on the receiver's address again: %v", err)
	}
	back := webhooktest.Serve(t, w.secrets[0], ln)
	began := time.Now()
	// The first retry is a second after the failure (webhooksvc.DefaultRetry).
	until(t, 20*time.Second, "the user.created webhook once the receiver is back", func() bool { return len(back.Accepted()) > 0 })
	t.Logf("user.created reached the receiver %s after it came back", time.Since(began).Round(time.Millisecond))
	if d := back.Accepted()[0]; d.Event.Type != identity.EventUserCreated || d.Event.User.ID != late || d.ID != d.Event.ID || d.ID == "" {
		t.Errorf("delivery after the downtime: webhook-id %q, event %+v; want user.created of %s with its id", d.ID, d.Event, late)
	}
	// Acknowledged: it will not come again.
	js, err := jetstream.New(p.connectAs(natsauth.Events))
	if err != nil {
		t.Fatal(err)
	}
	until(t, 10*time.Second, "the created endpoint's events all acknowledged", func() bool {
		cons, err := js.Consumer(context.Background(), identity.EventStream, webhooks.ConsumerPrefix+"created")
		if err != nil {
			t.Fatal(err)
		}
		info, err := cons.Info(context.Background())
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	})
	if got := back.Deliveries(); len(got) != 1 || !got[0].Valid {
		t.Errorf("%d deliveries once the receiver was back (%v), want one, signed", len(got), got)
	}
	if n := metric(t, ops, webhooksvc.NameDeliveries+`{endpoint="created"}`); n != 2 {
		t.Errorf("created deliveries = %v, want 2", n)
	}

	for _, s := range w.secrets {
		if strings.Contains(p.logs.String(), strings.TrimPrefix(s, "whsec_")) {
			t.Error("a webhook secret is in the logs")
		}
	}
}

// The in-process devstack runs the webhooks service when
// WXLOGIN_WEBHOOKS_FILE is set, ready before Start returns.
func TestDevstackRunsWebhooks(t *testing.T) {
	w := newWebhookReceivers(t)
	t.Setenv("WXLOGIN_WEBHOOKS_FILE", w.file)
	st := startStack(t)
	if st.WebhooksURL == "" || !strings.Contains(st.Banner(), st.WebhooksURL+"/metrics") {
		t.Fatalf("webhooks not started: %q\n%s", st.WebhooksURL, st.Banner())
	}
	login := func() response {
		code := st.mint(t, fakewechat.User{OpenID: "o_devstack_webhook"})
		r := postJSON(t, st.GatewayURL+"/api/v1/auth/miniprogram/login", map[string]any{"code": code})
		if r.status != http.StatusOK {
			t.Fatalf("login: %d %s", r.status, r.raw)
		}
		return r
	}
	w.check(t, userID(t, login()), func() { login() })
}

// startWebhooks runs the webhooks binary as the NATS user events, its ops
// server on a port of its own, and waits until it is ready; it returns the
// ops server's URL.
func (p *procStack) startWebhooks(file string) string {
	p.t.Helper()
	ops := "http://" + freeaddr.Addr(p.t)
	cmd := exec.Command(filepath.Join(p.bin, "webhooks"))
	cmd.Env = append(slices.Clip(p.env),
		"WXLOGIN_NATS_USER="+natsauth.Events, "WXLOGIN_NATS_PASSWORD="+confPasswords()[natsauth.Events],
		"WXLOGIN_WEBHOOKS_FILE="+file, "WXLOGIN_METRICS_ADDR="+strings.TrimPrefix(ops, "http://"))
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("start webhooks: %v", err)
	}
	p.procs["webhooks"] = cmd
	p.t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if err := waitReady(context.Background(), ops+"/readyz", 30*time.Second); err != nil {
		p.t.Fatalf("%v\nlogs:\n%s", err, p.logs.String())
	}
	return ops
}

// metric reads one series of an ops server's /metrics, e.g.
// `wxlogin_webhooks_deliveries_total{endpoint="created"}`; 0 when absent.
func metric(t *testing.T, ops, series string) float64 {
	t.Helper()
	for line := range strings.Lines(do(t, http.MethodGet, ops+"/metrics", "", "", nil).raw) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", series, err)
			}
			return f
		}
	}
	return 0
}
