package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/identity"
	"github.com/wxlogin/wxlogin/shared/logtest"
	"github.com/wxlogin/wxlogin/shared/natsauth"
	"github.com/wxlogin/wxlogin/shared/natstest"
	"github.com/wxlogin/wxlogin/shared/poll"
)

// recorder is a Handler that counts attempts and successes per event id and
// fails the first failFirst[id] attempts of an event.
type recorder struct {
	mu        sync.Mutex
	failFirst map[string]int
	attempts  map[string]int
	handled   map[string]int
}

func newRecorder(failFirst map[string]int) *recorder {
	return &recorder{failFirst: failFirst, attempts: map[string]int{}, handled: map[string]int{}}
}

func (r *recorder) handle(_ context.Context, ev identity.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts[ev.ID]++
	if r.attempts[ev.ID] <= r.failFirst[ev.ID] {
		return errors.New("test: handler failure")
	}
	r.handled[ev.ID]++
	return nil
}

func (r *recorder) snapshot() (attempts, handled map[string]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return clone(r.attempts), clone(r.handled)
}

func clone(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func testConfig(durable string) Config {
	return Config{
		Stream:     identity.EventStream,
		Durable:    durable,
		Filter:     identity.EventStreamSubjects,
		AckWait:    5 * time.Second,
		MaxDeliver: 5,
		RetryDelay: 10 * time.Millisecond,
		DedupeSize: 100,
	}
}

// newStream creates WXLOGIN_EVENTS as identity's relay does: the duplicate
// window drops a republished Nats-Msg-Id within 2 minutes.
func newStream(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	_, err := js.CreateStream(context.Background(), jetstream.StreamConfig{
		Name:       identity.EventStream,
		Subjects:   []string{identity.EventStreamSubjects},
		Storage:    jetstream.FileStorage,
		Duplicates: 2 * time.Minute,
	})
	if err != nil {
		t.Fatalf("create stream: %v", err)
	}
}

// published is one message the test puts on the stream.
type published struct {
	subject string
	eventID string // "" with raw set: a malformed body
	msgID   string // Nats-Msg-Id; the relay uses the event id
	raw     string
}

func event(subject, id string) published { return published{subject: subject, eventID: id, msgID: id} }

func publish(t *testing.T, js jetstream.JetStream, p published) *jetstream.PubAck {
	t.Helper()
	body := []byte(p.raw)
	if p.eventID != "" {
		typ, _ := strings.CutPrefix(p.subject, "wxlogin.events.")
		var err error
		body, err = json.Marshal(identity.Event{
			ID:         p.eventID,
			Type:       typ,
			OccurredAt: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
			User:       api.User{ID: "user-" + p.eventID, Username: "wx_" + p.eventID},
			Identity:   &identity.EventIdentity{ID: "ident-" + p.eventID, Kind: api.KindMiniProgram, AppID: "wx1111111111111111", OpenID: "o_" + p.eventID},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	var opts []jetstream.PublishOpt
	if p.msgID != "" {
		opts = append(opts, jetstream.WithMsgID(p.msgID))
	}
	ack, err := js.Publish(context.Background(), p.subject, body, opts...)
	if err != nil {
		t.Fatalf("publish %+v: %v", p, err)
	}
	return ack
}

// start runs a subscriber until the test ends (or until the returned stop is
// called), and fails the test if Run returns an error.
func start(t *testing.T, js jetstream.JetStream, cfg Config, h Handler, log *slog.Logger) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- NewSubscriber(js, cfg, h, log).Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// waitSettled polls the consumer until it has delivered everything up to
// stream sequence lastSeq and settled all of it (acked or terminated; a nak
// keeps the ack floor back), or fails after a deadline.
func waitSettled(t *testing.T, js jetstream.JetStream, durable string, lastSeq uint64) {
	t.Helper()
	ctx := context.Background()
	poll.UntilNil(t, 15*time.Second, fmt.Sprintf("consumer %s to settle up to stream seq %d", durable, lastSeq), func() error {
		c, err := js.Consumer(ctx, identity.EventStream, durable)
		if err != nil {
			return err
		}
		info, err := c.Info(ctx)
		if err != nil {
			return err
		}
		if info.Delivered.Stream >= lastSeq && info.AckFloor.Stream == info.Delivered.Stream &&
			info.NumPending == 0 && info.NumAckPending == 0 {
			return nil
		}
		return fmt.Errorf("%+v", info)
	})
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestSubscriber(t *testing.T) {
	const (
		created  = identity.SubjectUserCreated
		loggedIn = identity.SubjectUserLoggedIn
	)
	tests := []struct {
		name         string
		filter       string
		maxDeliver   int
		failFirst    map[string]int
		publish      []published
		wantStored   uint64 // messages in the stream: proves what the stream deduped and what it did not
		wantHandled  map[string]int
		wantAttempts map[string]int
	}{
		{
			name: "each event id is handled once",
			publish: []published{
				event(created, "ev-a"),
				event(created, "ev-a"), // the relay's retry within the window: the stream drops it
				{subject: created, eventID: "ev-a", msgID: "ev-a-republished"}, // past the window: stored, the subscriber drops it
				event(loggedIn, "ev-b"),
			},
			wantStored:   3,
			wantHandled:  map[string]int{"ev-a": 1, "ev-b": 1},
			wantAttempts: map[string]int{"ev-a": 1, "ev-b": 1},
		},
		{
			name:         "the filter selects the subjects",
			filter:       created,
			publish:      []published{event(created, "ev-a"), event(loggedIn, "ev-b"), event(created, "ev-c")},
			wantStored:   3,
			wantHandled:  map[string]int{"ev-a": 1, "ev-c": 1},
			wantAttempts: map[string]int{"ev-a": 1, "ev-c": 1},
		},
		{
			name:         "a failed event is redelivered and then handled once",
			failFirst:    map[string]int{"ev-a": 2},
			publish:      []published{event(created, "ev-a"), event(created, "ev-b")},
			wantStored:   2,
			wantHandled:  map[string]int{"ev-a": 1, "ev-b": 1},
			wantAttempts: map[string]int{"ev-a": 3, "ev-b": 1},
		},
		{
			name:         "an event failing every delivery is given up after MaxDeliver",
			maxDeliver:   3,
			failFirst:    map[string]int{"ev-a": 1000},
			publish:      []published{event(created, "ev-a"), event(created, "ev-b")},
			wantStored:   2,
			wantHandled:  map[string]int{"ev-b": 1},
			wantAttempts: map[string]int{"ev-a": 3, "ev-b": 1},
		},
		{
			name: "malformed bodies are dropped without reaching the handler",
			publish: []published{
				{subject: created, raw: "not json", msgID: "junk-1"},
				{subject: created, raw: `{"type":"user.created"}`, msgID: "junk-2"}, // no id to dedupe by
				event(created, "ev-a"),
			},
			wantStored:   3,
			wantHandled:  map[string]int{"ev-a": 1},
			wantAttempts: map[string]int{"ev-a": 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			js, err := jetstream.New(natstest.Connect(t, natstest.Start(t)))
			if err != nil {
				t.Fatal(err)
			}
			newStream(t, js)
			cfg := testConfig("test")
			if tt.filter != "" {
				cfg.Filter = tt.filter
			}
			if tt.maxDeliver != 0 {
				cfg.MaxDeliver = tt.maxDeliver
			}
			rec := newRecorder(tt.failFirst)
			stop := start(t, js, cfg, rec.handle, quietLog())

			dupes := 0
			var lastSeq uint64 // of the last message the filter lets through
			for _, p := range tt.publish {
				ack := publish(t, js, p)
				if ack.Duplicate {
					dupes++
				}
				if cfg.Filter == identity.EventStreamSubjects || p.subject == cfg.Filter {
					lastSeq = max(lastSeq, ack.Sequence)
				}
			}
			waitSettled(t, js, cfg.Durable, lastSeq)
			stop()

			info, err := js.Stream(context.Background(), identity.EventStream)
			if err != nil {
				t.Fatal(err)
			}
			if got := info.CachedInfo().State.Msgs; got != tt.wantStored {
				t.Errorf("stream holds %d messages, want %d", got, tt.wantStored)
			}
			if want := len(tt.publish) - int(tt.wantStored); dupes != want {
				t.Errorf("%d publishes acknowledged as duplicates, want %d", dupes, want)
			}
			attempts, handled := rec.snapshot()
			if !equal(handled, tt.wantHandled) {
				t.Errorf("handled = %v, want %v", handled, tt.wantHandled)
			}
			if !equal(attempts, tt.wantAttempts) {
				t.Errorf("attempts = %v, want %v", attempts, tt.wantAttempts)
			}
		})
	}
}

func equal(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// The durable consumer remembers its position: a restarted subscriber gets
// only what it has not acknowledged, and waits for a stream that does not
// exist yet instead of failing.
func TestSubscriberResumesAndWaitsForStream(t *testing.T) {
	js, err := jetstream.New(natstest.Connect(t, natstest.Start(t)))
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig("resume")

	// Started before identity has created the stream.
	first := newRecorder(nil)
	stop := start(t, js, cfg, first.handle, quietLog())
	newStream(t, js)
	ack := publish(t, js, event(identity.SubjectUserCreated, "ev-a"))
	waitSettled(t, js, cfg.Durable, ack.Sequence)
	stop()

	ack = publish(t, js, event(identity.SubjectUserCreated, "ev-b"))

	second := newRecorder(nil)
	start(t, js, cfg, second.handle, quietLog())
	waitSettled(t, js, cfg.Durable, ack.Sequence)

	if _, h := first.snapshot(); !equal(h, map[string]int{"ev-a": 1}) {
		t.Errorf("first run handled %v, want ev-a once", h)
	}
	if _, h := second.snapshot(); !equal(h, map[string]int{"ev-b": 1}) {
		t.Errorf("second run handled %v, want only ev-b", h)
	}
}

// A consumer the server or the client refuses (not a missing stream) stops
// Run at once instead of retrying forever.
func TestSubscriberRejectedConsumer(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, js jetstream.JetStream, cfg *Config)
	}{
		{"invalid durable name", func(t *testing.T, js jetstream.JetStream, cfg *Config) {
			cfg.Durable = "has.dots"
		}},
		{"durable exists with another deliver policy", func(t *testing.T, js jetstream.JetStream, cfg *Config) {
			_, err := js.CreateConsumer(context.Background(), identity.EventStream, jetstream.ConsumerConfig{
				Durable: cfg.Durable, DeliverPolicy: jetstream.DeliverNewPolicy, AckPolicy: jetstream.AckExplicitPolicy,
			})
			if err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			js, err := jetstream.New(natstest.Connect(t, natstest.Start(t)))
			if err != nil {
				t.Fatal(err)
			}
			newStream(t, js)
			cfg := testConfig("rejected")
			tt.setup(t, js, &cfg)

			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err = NewSubscriber(js, cfg, newRecorder(nil).handle, quietLog()).Run(ctx)
			if err == nil || ctx.Err() != nil {
				t.Fatalf("Run = %v (ctx %v), want an immediate error", err, ctx.Err())
			}
		})
	}
}

func TestPrintEvent(t *testing.T) {
	tests := []struct {
		name string
		ev   identity.Event
		want string
	}{
		{
			name: "with identity",
			ev: identity.Event{
				ID: "e1", Type: identity.EventUserCreated, OccurredAt: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
				User:     api.User{ID: "u1", Username: "wx_abc", Nickname: "Alice"},
				Identity: &identity.EventIdentity{Kind: api.KindMiniProgram, AppID: "wx1111111111111111", OpenID: "o_secretish"},
			},
			want: "2025-01-02T03:04:05Z user.created id=e1 user_id=u1 username=wx_abc kind=miniprogram appid=wx1111111111111111\n",
		},
		{
			name: "without identity",
			ev:   identity.Event{ID: "e2", Type: identity.EventUserUpdated, OccurredAt: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), User: api.User{ID: "u2", Username: "bob"}},
			want: "2025-01-02T03:04:05Z user.updated id=e2 user_id=u2 username=bob\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := printEvent(&buf)(context.Background(), tt.ev); err != nil {
				t.Fatal(err)
			}
			if buf.String() != tt.want {
				t.Errorf("got  %q\nwant %q", buf.String(), tt.want)
			}
			for _, private := range []string{"o_secretish", "Alice"} {
				if strings.Contains(buf.String(), private) {
					t.Errorf("line contains %q", private)
				}
			}
		})
	}
}

func TestSeenIDs(t *testing.T) {
	s := newSeenIDs(2)
	s.Add("a")
	s.Add("b")
	if !s.Contains("a") { // a is now the most recent
		t.Fatal("a forgotten")
	}
	s.Add("c") // evicts b, the least recently seen
	for id, want := range map[string]bool{"a": true, "b": false, "c": true} {
		if got := s.Contains(id); got != want {
			t.Errorf("Contains(%s) = %v, want %v", id, got, want)
		}
	}
	s.Add("c")
	if s.Len() != 2 {
		t.Errorf("Len = %d, want 2", s.Len())
	}
}

func TestConfig(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string // a substring naming the variable; "" for no error
	}{
		{"defaults", nil, ""},
		{"bad duration", map[string]string{"SUBSCRIBER_ACK_WAIT": "soon"}, "SUBSCRIBER_ACK_WAIT"},
		{"zero ack wait", map[string]string{"SUBSCRIBER_ACK_WAIT": "0s"}, "SUBSCRIBER_ACK_WAIT"},
		{"max deliver zero", map[string]string{"SUBSCRIBER_MAX_DELIVER": "0"}, "SUBSCRIBER_MAX_DELIVER"},
		{"max deliver not a number", map[string]string{"SUBSCRIBER_MAX_DELIVER": "many"}, "SUBSCRIBER_MAX_DELIVER"},
		{"dedupe size", map[string]string{"SUBSCRIBER_DEDUPE_SIZE": "-1"}, "SUBSCRIBER_DEDUPE_SIZE"},
		{"log level", map[string]string{"WXLOGIN_LOG_LEVEL": "loud"}, "WXLOGIN_LOG_LEVEL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			cfg, err := ConfigFromEnv()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if cfg.Filter != "wxlogin.events.>" || cfg.Stream != identity.EventStream || cfg.MaxDeliver != 5 {
					t.Errorf("defaults = %+v", cfg)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want one naming %s", err, tt.wantErr)
			}
		})
	}
}

// run end to end: flags override the environment, one line per event on
// stdout, and a clean exit on cancel.
func TestRun(t *testing.T) {
	// As in production: identity writes the stream, the subscriber is events.
	srv := natstest.StartSecured(t)
	js, err := jetstream.New(natstest.ConnectAs(t, srv, natsauth.Identity))
	if err != nil {
		t.Fatal(err)
	}
	newStream(t, js)
	ack := publish(t, js, event(identity.SubjectUserCreated, "ev-a"))
	publish(t, js, event(identity.SubjectUserLoggedIn, "ev-b"))
	t.Setenv("WXLOGIN_NATS_URL", srv.ClientURL())
	t.Setenv("WXLOGIN_NATS_USER", natsauth.Events)
	t.Setenv("WXLOGIN_NATS_PASSWORD", srv.Passwords[natsauth.Events])
	if js, err = jetstream.New(natstest.ConnectAs(t, srv, natsauth.Events)); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &logtest.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-filter", identity.SubjectUserCreated, "-durable", "run-test"}, out, io.Discard)
	}()
	waitSettled(t, js, "run-test", ack.Sequence)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "user.created id=ev-a ") {
		t.Errorf("stdout = %q, want one user.created line for ev-a", out.String())
	}
}

func TestRunBadFlag(t *testing.T) {
	err := run(context.Background(), []string{"-durable", ""}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "SUBSCRIBER_DURABLE") {
		t.Errorf("run = %v, want an error naming SUBSCRIBER_DURABLE", err)
	}
}
