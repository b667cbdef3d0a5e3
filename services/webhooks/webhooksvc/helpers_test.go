package webhooksvc_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/services/webhooks/webhooksvc"
	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/identity"
	"github.com/wxlogin/wxlogin/shared/api/webhooks"
	"github.com/wxlogin/wxlogin/shared/logtest"
	"github.com/wxlogin/wxlogin/shared/natsauth"
	"github.com/wxlogin/wxlogin/shared/natsconn"
	"github.com/wxlogin/wxlogin/shared/natstest"
	"github.com/wxlogin/wxlogin/shared/poll"
)

// bus is a real NATS server with wxlogin's users and permissions, the
// event stream created as identity creates it.
type bus struct {
	t  *testing.T
	ns *natstest.Secured
	// identity publishes events, as identity's relay does; events looks
	// at the dead letters, as the webhooks service's user.
	identity, events jetstream.JetStream
}

func newBus(t *testing.T) *bus {
	t.Helper()
	b := newBareBus(t)
	if _, err := b.identity.CreateStream(context.Background(), jetstream.StreamConfig{
		Name: identity.EventStream, Subjects: []string{identity.EventStreamSubjects}, Duplicates: 2 * time.Minute,
	}); err != nil {
		t.Fatal(err)
	}
	return b
}

// newBareBus is newBus before identity created the event stream.
func newBareBus(t *testing.T) *bus {
	t.Helper()
	ns := natstest.StartSecured(t)
	b := &bus{t: t, ns: ns}
	var err error
	if b.identity, err = jetstream.New(natstest.ConnectAs(t, ns, natsauth.Identity)); err != nil {
		t.Fatal(err)
	}
	if b.events, err = jetstream.New(natstest.ConnectAs(t, ns, natsauth.Events)); err != nil {
		t.Fatal(err)
	}
	return b
}

// publish publishes an event of type typ about user, as identity does,
// and returns it as published.
func (b *bus) publish(typ, user string) published {
	b.t.Helper()
	ev := identity.Event{ID: strings.ToLower(rand.Text()), Type: typ, OccurredAt: time.Now().UTC(), User: api.User{ID: user, Nickname: "Alice"}}
	body, err := json.Marshal(ev)
	if err != nil {
		b.t.Fatal(err)
	}
	if _, err := b.identity.Publish(context.Background(), "wxlogin.events."+typ, body, jetstream.WithMsgID(ev.ID)); err != nil {
		b.t.Fatalf("publish %s: %v", typ, err)
	}
	return published{ID: ev.ID, Type: typ, Body: body}
}

type published struct {
	ID, Type string
	Body     []byte
}

// deadLetters counts the dead letters by endpoint name.
func (b *bus) deadLetters() map[string]uint64 {
	b.t.Helper()
	s, err := b.events.Stream(context.Background(), webhooks.DeadStream)
	if err != nil {
		b.t.Fatalf("dead-letter stream: %v", err)
	}
	info, err := s.Info(context.Background(), jetstream.WithSubjectFilter(webhooks.DeadStreamSubjects))
	if err != nil {
		b.t.Fatal(err)
	}
	out := map[string]uint64{}
	for subj, n := range info.State.Subjects {
		out[strings.TrimPrefix(subj, webhooks.DeadSubjectPrefix)] = n
	}
	return out
}

// endpoint is one entry of a test's WXLOGIN_WEBHOOKS_FILE.
type endpoint struct {
	Name        string   `json:"name,omitempty"`
	URL         string   `json:"url"`
	Secret      string   `json:"secret"`
	Events      []string `json:"events,omitempty"`
	Concurrency int      `json:"concurrency,omitempty"`
	Timeout     string   `json:"timeout,omitempty"`
}

// writeFile writes the endpoints as a JSON file (JSON is YAML too).
func writeFile(t *testing.T, eps ...endpoint) string {
	t.Helper()
	b, err := json.Marshal(eps)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "webhooks.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// config is the service's configuration on the bus, as the user events,
// with retries in milliseconds rather than seconds.
func (b *bus) config(file string) webhooksvc.Config {
	return webhooksvc.Config{
		NATSURL:       b.ns.ClientURL(),
		NATSAuth:      natsconn.Credentials{User: natsauth.Events, Password: b.ns.Passwords[natsauth.Events]},
		WebhooksFile:  file,
		MaxAge:        time.Hour,
		NATSReplicas:  1,
		Retry:         []time.Duration{20 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond},
		StatsInterval: 50 * time.Millisecond,
		LogLevel:      slog.LevelDebug,
	}
}

// service is a running copy of the webhooks service.
type service struct {
	ops  string // its ops server, http://host:port
	logs *logtest.Buffer
	log  *slog.Logger // into logs, for the test's own calls (Replay)
	done chan error
	// stop stops it (SIGTERM) and waits until it has; the test's end does too.
	stop func()
}

// start runs a copy of the service until the test ends and waits until it
// is ready (every endpoint's consumer there).
func start(t *testing.T, cfg webhooksvc.Config) *service {
	t.Helper()
	s := startNotReady(t, cfg)
	s.waitReady(t)
	return s
}

// startNotReady is start without the wait.
func startNotReady(t *testing.T, cfg webhooksvc.Config) *service {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &service{ops: "http://" + ln.Addr().String(), logs: &logtest.Buffer{}, done: make(chan error, 1)}
	s.log = slog.New(slog.NewJSONHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	go func() { s.done <- webhooksvc.Serve(ctx, cfg, s.log, ln) }()
	var once sync.Once
	s.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-s.done:
				if err != nil {
					t.Errorf("webhooks service: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("webhooks service did not stop")
			}
		})
	}
	t.Cleanup(s.stop)
	return s
}

func (s *service) waitReady(t *testing.T) {
	t.Helper()
	poll.Until(t, 15*time.Second, "the webhooks service ready", func() bool {
		select {
		case err := <-s.done:
			t.Fatalf("webhooks service stopped: %v\n%s", err, s.logs)
		default:
		}
		resp, err := http.Get(s.ops + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// metric reads one series from the service's /metrics, e.g.
// `wxlogin_webhooks_deliveries_total{endpoint="a"}`; -1 when absent.
func (s *service) metric(t *testing.T, series string) float64 {
	t.Helper()
	resp, err := http.Get(s.ops + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 4<<20))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", series, err)
			}
			return f
		}
	}
	return -1
}

func series(name, endpoint string, more ...string) string {
	labels := fmt.Sprintf("endpoint=%q", endpoint)
	for _, m := range more {
		labels += "," + m
	}
	return name + "{" + labels + "}"
}

// ids are the webhook-ids of deliveries, in order.
func ids(ds []delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	return out
}
