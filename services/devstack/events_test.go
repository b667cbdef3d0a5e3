package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/shared/natsauth"
)

// streamEvents reads every event stored so far on subject from WXLOGIN_EVENTS.
func streamEvents(t *testing.T, js jetstream.JetStream, subject string) []*nats.Msg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := js.Stream(ctx, "WXLOGIN_EVENTS")
	if err != nil {
		t.Fatalf("stream WXLOGIN_EVENTS: %v", err)
	}
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, n := range info.State.Subjects {
		want += int(n)
	}
	var out []*nats.Msg
	if want == 0 {
		return out
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.FetchNoWait(want)
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		msg := &nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()}
		if md, err := m.Metadata(); err == nil {
			// When the stream stored it, for tests that time the relay.
			msg.Header.Set(storedHeader, md.Timestamp.Format(time.RFC3339Nano))
		}
		out = append(out, msg)
	}
	if len(out) != want {
		t.Fatalf("read %d events of %d on %s", len(out), want, subject)
	}
	return out
}

// storedHeader is the header streamEvents adds: the time the stream stored the message.
const storedHeader = "X-Test-Stored"

type eventBody struct {
	ID         string    `json:"id"`
	Type       string    `json:"type"`
	OccurredAt time.Time `json:"occurred_at"`
	User       struct {
		ID string `json:"id"`
	} `json:"user"`
	Identity map[string]any `json:"identity"`
}

// createdByUser checks every user.created event (Nats-Msg-Id = id, no
// secret) and counts them by user id.
func createdByUser(t *testing.T, js jetstream.JetStream) map[string]int {
	t.Helper()
	byUser := map[string]int{}
	for _, m := range streamEvents(t, js, "wxlogin.events.user.created") {
		var e eventBody
		if err := json.Unmarshal(m.Data, &e); err != nil {
			t.Fatalf("event body: %v", err)
		}
		if e.ID == "" || m.Header.Get("Nats-Msg-Id") != e.ID {
			t.Fatalf("Nats-Msg-Id %q != event id %q", m.Header.Get("Nats-Msg-Id"), e.ID)
		}
		if strings.Contains(string(m.Data), "session_key") {
			t.Fatalf("event carries a session_key: %s", m.Data)
		}
		byUser[e.User.ID]++
	}
	return byUser
}

// outboxDrained reports whether identity has published every event.
func outboxDrained(db *sqlx.DB) func() bool {
	return func() bool {
		var pending int
		err := db.Get(&pending, `SELECT count(*) FROM outbox WHERE published_at IS NULL`)
		return err == nil && pending == 0
	}
}

// checkOneCreatedEach fails the test unless every user has exactly one
// user.created in the stream, and the stream names no other user.
func checkOneCreatedEach(t *testing.T, db *sqlx.DB, js jetstream.JetStream) int {
	t.Helper()
	var users []string
	if err := db.Select(&users, `SELECT id::text FROM users`); err != nil {
		t.Fatal(err)
	}
	byUser := createdByUser(t, js)
	for _, id := range users {
		if byUser[id] != 1 {
			t.Errorf("user %s has %d user.created events, want exactly 1", id, byUser[id])
		}
	}
	if len(byUser) != len(users) {
		t.Errorf("%d users with events, %d users in the database", len(byUser), len(users))
	}
	return len(users)
}

// TestEventsProcesses is issue 6's acceptance against separate processes.
func TestEventsProcesses(t *testing.T) {
	p := startProcs(t, "WXLOGIN_METRICS_ADDR=")
	// As its readers do: the stream as user events, PINGs as the gateway.
	nc := p.connectAs(natsauth.Gateway)
	_, js := p.jetStream()
	login := p.url("/api/v1/auth/miniprogram/login")
	db := p.openDB()
	drained := outboxDrained(db)

	t.Run("NATS admits no one without a user", func(t *testing.T) {
		if nc, err := nats.Connect(p.nats.ClientURL()); !errors.Is(err, nats.ErrAuthorization) {
			if err == nil {
				nc.Close()
			}
			t.Fatalf("anonymous connect: %v, want an authorization violation", err)
		}
	})

	t.Run("services answer $SRV.PING", func(t *testing.T) {
		for _, svc := range []string{"identity", "session"} {
			if _, err := nc.Request("$SRV.PING."+svc, nil, 2*time.Second); err != nil {
				t.Errorf("$SRV.PING.%s: %v", svc, err)
			}
		}
	})

	t.Run("30 concurrent first logins make one user.created", func(t *testing.T) {
		var wg sync.WaitGroup
		for i := range 30 {
			code := fmt.Sprintf("ev-same-%d", i)
			p.wx.mint(code, standInUser{OpenID: "o_events_same"})
			wg.Add(1)
			go func() {
				defer wg.Done()
				if r := postJSON(t, login, map[string]any{"code": code}); r.status != http.StatusOK {
					t.Errorf("login: %d %s", r.status, r.raw)
				}
			}()
		}
		wg.Wait()
		until(t, 20*time.Second, "the outbox to drain", drained)
		byUser := createdByUser(t, js)
		if len(byUser) != 1 {
			t.Fatalf("user.created for %d users, want 1: %v", len(byUser), byUser)
		}
		for id, n := range byUser {
			if n != 1 {
				t.Fatalf("user %s has %d user.created events, want 1", id, n)
			}
		}
		if logged := streamEvents(t, js, "wxlogin.events.user.logged_in"); len(logged) != 30 {
			t.Errorf("%d user.logged_in events for 30 logins", len(logged))
		}
	})

	t.Run("kill -9 of identity mid-burst loses and doubles nothing", func(t *testing.T) {
		const n = 60
		var done atomic.Int32
		var wg sync.WaitGroup
		killed := make(chan struct{})
		for i := range n {
			code := fmt.Sprintf("ev-burst-%d", i)
			p.wx.mint(code, standInUser{OpenID: fmt.Sprintf("o_burst_%d", i)})
			wg.Add(1)
			go func() {
				defer wg.Done()
				if i >= n/2 {
					<-killed // the second half runs into the dead service and its restart
				}
				r := postJSON(t, login, map[string]any{"code": code})
				if r.status == http.StatusOK {
					done.Add(1)
				}
			}()
		}
		until(t, 20*time.Second, "half the burst", func() bool { return done.Load() >= n/4 })
		p.kill("identity")
		close(killed)
		p.start("identity")
		wg.Wait()
		until(t, 30*time.Second, "the outbox to drain after the restart", drained)
		checkOneCreatedEach(t, db, js)
	})

	t.Run("SIGTERM mid-burst finishes what it accepted", func(t *testing.T) {
		const n = 60
		var done atomic.Int32
		var wg sync.WaitGroup
		statuses := make([]int, n)
		for i := range n {
			code := fmt.Sprintf("ev-term-%d", i)
			p.wx.mint(code, standInUser{OpenID: fmt.Sprintf("o_term_%d", i)})
			wg.Add(1)
			go func() {
				defer wg.Done()
				statuses[i] = postJSON(t, login, map[string]any{"code": code}).status
				done.Add(1)
			}()
		}
		until(t, 20*time.Second, "a quarter of the burst", func() bool { return done.Load() >= n/4 })
		p.terminate("identity")
		wg.Wait()
		p.start("identity")
		for i, st := range statuses {
			// Accepted work completes; what arrives after the stop is refused
			// as unavailable; nothing is an internal error.
			if st != http.StatusOK && st != http.StatusServiceUnavailable {
				t.Errorf("login %d during SIGTERM: %d", i, st)
			}
		}
		until(t, 30*time.Second, "the outbox to drain after the restart", drained)
		checkOneCreatedEach(t, db, js)
	})

	t.Run("metrics and OpenAPI", func(t *testing.T) {
		m := do(t, http.MethodGet, "http://"+p.metrics+"/metrics", "", "", nil)
		if m.status != http.StatusOK || !strings.Contains(m.raw, "# HELP") || !strings.Contains(m.raw, "# TYPE") {
			t.Fatalf("/metrics: %d %.200s", m.status, m.raw)
		}
		if m := do(t, http.MethodGet, p.url("/metrics"), "", "", nil); m.status != http.StatusNotFound {
			t.Fatalf("/metrics on the public port: %d, want 404", m.status)
		}
		o := do(t, http.MethodGet, p.url("/openapi.json"), "", "", nil)
		if o.status != http.StatusOK || !strings.Contains(o.raw, `"/api/v1/auth/miniprogram/login"`) {
			t.Fatalf("/openapi.json: %d %.200s", o.status, o.raw)
		}
	})
}
