package kvwatch

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/shared/logtest"
	"github.com/wxlogin/wxlogin/shared/natstest"
	"github.com/wxlogin/wxlogin/shared/poll"
)

const bucket = "kvwatch_test"

// view is a Handler that keeps a copy of what the watch delivers, replaced
// by each (re)started watch's initial values once they are all in.
type view struct {
	mu     sync.Mutex
	begins int
	keys   map[string]string
	next   map[string]string // nil unless a load is in progress
}

func (v *view) Begin() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.begins++
	v.next = map[string]string{}
}

func (v *view) Entry(e jetstream.KeyValueEntry) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, m := range []map[string]string{v.keys, v.next} {
		if m == nil {
			continue
		}
		if e.Operation() == jetstream.KeyValuePut {
			m[e.Key()] = string(e.Value())
		} else {
			delete(m, e.Key())
		}
	}
}

func (v *view) Loaded() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.keys, v.next = v.next, nil
}

// is reports whether the view holds exactly want.
func (v *view) is(want map[string]string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.keys != nil && maps.Equal(v.keys, want)
}

func (v *view) beginCount() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.begins
}

type world struct {
	ns *server.Server
	js jetstream.JetStream
}

func newWorld(t *testing.T) *world {
	t.Helper()
	ns := natstest.Start(t)
	js, err := jetstream.New(natstest.Connect(t, ns))
	if err != nil {
		t.Fatal(err)
	}
	return &world{ns: ns, js: js}
}

func (w *world) create(t *testing.T) jetstream.KeyValue {
	t.Helper()
	return natstest.CreateKeyValue(t, w.js, jetstream.KeyValueConfig{Bucket: bucket})
}

func (w *world) delete(t *testing.T) {
	t.Helper()
	if err := w.js.DeleteKeyValue(context.Background(), bucket); err != nil {
		t.Fatal(err)
	}
}

// restart stops the server, runs down while it is away, and starts it
// again on its port and store.
func (w *world) restart(t *testing.T, down func()) {
	t.Helper()
	restart := natstest.Stop(t, w.ns)
	down()
	w.ns = restart()
}

// run runs the watch, checking the bucket every 50 ms, until the test ends.
func (w *world) run(t *testing.T, opts Options, h Handler) {
	t.Helper()
	opts.CheckEvery = 50 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, NewBucket(w.js, bucket), opts, h, slog.New(slog.NewTextHandler(t.Output(), nil)))
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

func put(t *testing.T, kv jetstream.KeyValue, key, value string) {
	t.Helper()
	if _, err := kv.Put(context.Background(), key, []byte(value)); err != nil {
		t.Fatal(err)
	}
}

// TestRun: the watch waits for the bucket, loads it, follows changes, starts
// over on a bucket deleted and re-created (forgetting what the old one held)
// and goes on across a NATS restart.
func TestRun(t *testing.T) {
	w := newWorld(t)
	v := &view{}
	w.run(t, Options{}, v)

	kv := w.create(t)
	put(t, kv, "a", "1")
	poll.Until(t, 15*time.Second, "the initial load", func() bool { return v.is(map[string]string{"a": "1"}) })

	put(t, kv, "b", "2")
	if err := kv.Delete(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 15*time.Second, "a put and a delete", func() bool { return v.is(map[string]string{"b": "2"}) })

	begins := v.beginCount()
	w.delete(t)
	kv = w.create(t)
	put(t, kv, "c", "3")
	poll.Until(t, 15*time.Second, "the watch on the re-created bucket", func() bool { return v.is(map[string]string{"c": "3"}) })
	if v.beginCount() == begins {
		t.Error("the handler was not told to start over")
	}

	w.restart(t, func() {})
	// The writer's own connection is still reconnecting (its write may
	// time out meanwhile): the write is what is retried, not the watch.
	poll.UntilNil(t, 15*time.Second, "a write after the NATS restart", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := kv.Put(ctx, "d", []byte("4"))
		return err
	})
	poll.Until(t, 15*time.Second, "a write after the NATS restart", func() bool { return v.is(map[string]string{"c": "3", "d": "4"}) })
}

// TestRunKeys: with a filter, only the matching keys are delivered, before
// and after the bucket is re-created.
func TestRunKeys(t *testing.T) {
	w := newWorld(t)
	kv := w.create(t)
	put(t, kv, "user.u1", "1")
	put(t, kv, "other.o1", "x")
	v := &view{}
	w.run(t, Options{Keys: "user.*"}, v)
	poll.Until(t, 15*time.Second, "the initial load", func() bool { return v.is(map[string]string{"user.u1": "1"}) })

	put(t, kv, "other.o2", "x")
	put(t, kv, "user.u2", "2")
	poll.Until(t, 15*time.Second, "a matching write", func() bool { return v.is(map[string]string{"user.u1": "1", "user.u2": "2"}) })

	w.delete(t)
	kv = w.create(t)
	put(t, kv, "other.o3", "x")
	put(t, kv, "user.u3", "3")
	poll.Until(t, 15*time.Second, "the re-created bucket", func() bool { return v.is(map[string]string{"user.u3": "3"}) })
}

// TestHealth: healthy once loaded; unhealthy while the bucket is gone and
// while NATS is away, healthy again after.
func TestHealth(t *testing.T) {
	w := newWorld(t)
	h := NewHealth(time.Now)
	if h.UnhealthyFor() <= time.Hour {
		t.Fatalf("before the first load: unhealthy for %s, want forever", h.UnhealthyFor())
	}
	kv := w.create(t)
	put(t, kv, "a", "1")
	w.run(t, Options{Health: h}, &view{})
	healthy := func() bool { return h.UnhealthyFor() == 0 }
	unhealthy := func() bool { return h.UnhealthyFor() > 0 }
	poll.Until(t, 15*time.Second, "healthy after the load", healthy)

	w.delete(t)
	poll.Until(t, 15*time.Second, "unhealthy without the bucket", unhealthy)
	w.create(t)
	poll.Until(t, 15*time.Second, "healthy on the re-created bucket", healthy)

	w.restart(t, func() { poll.Until(t, 15*time.Second, "unhealthy while NATS is away", unhealthy) })
	poll.Until(t, 15*time.Second, "healthy after the NATS restart", healthy)
}

// TestUpdatesOnly: the current values are skipped, later writes delivered.
func TestUpdatesOnly(t *testing.T) {
	w := newWorld(t)
	kv := w.create(t)
	put(t, kv, "old", "1")
	v := &view{}
	w.run(t, Options{UpdatesOnly: true}, v)
	poll.Until(t, 15*time.Second, "the watch to start", func() bool { return v.is(map[string]string{}) })
	put(t, kv, "new", "2")
	poll.Until(t, 15*time.Second, "a later write", func() bool { return v.is(map[string]string{"new": "2"}) })
}

func TestHealthNeedsWholeBucket(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Keys with Health accepted")
		}
	}()
	Run(context.Background(), NewBucket(nil, bucket), Options{Keys: "user.*", Health: NewHealth(time.Now)}, &view{}, slog.New(slog.DiscardHandler))
}

// TestRunEndsPromptlyWithoutNATS: with the server gone, cancelling ctx ends
// Run at once. Stopping a watch deletes its consumer with a request that
// ignores ctx and waits out its own 5 s timeout; a shutdown must not wait
// for it. Several watches, as a service runs them: each used to have about
// even odds of waiting.
func TestRunEndsPromptlyWithoutNATS(t *testing.T) {
	w := newWorld(t)
	kv := w.create(t)
	put(t, kv, "user.u1", "1")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var running sync.WaitGroup
	for _, c := range []struct {
		opts Options
		want map[string]string
	}{
		{Options{}, map[string]string{"user.u1": "1"}},
		{Options{Health: NewHealth(time.Now)}, map[string]string{"user.u1": "1"}},
		{Options{Keys: "user.*"}, map[string]string{"user.u1": "1"}},
		{Options{UpdatesOnly: true}, map[string]string{}},
	} {
		v := &view{}
		running.Go(func() { Run(ctx, NewBucket(w.js, bucket), c.opts, v, slog.New(slog.NewTextHandler(t.Output(), nil))) })
		poll.Until(t, 15*time.Second, "the initial load", func() bool { return v.is(c.want) })
	}

	w.ns.Shutdown()
	poll.Until(t, 15*time.Second, "the connection to notice", func() bool { return !w.js.Conn().IsConnected() })
	cancel()
	stopped := make(chan struct{})
	go func() { running.Wait(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not return within 2 s of ctx ending while NATS is down")
	}
}

// TestOpenWaitEndsWithCtx: with the server gone a lookup of the bucket
// lasts until its ctx ends; an Open behind it gives up when its own ctx
// does, not when the lookup it waits for does.
func TestOpenWaitEndsWithCtx(t *testing.T) {
	w := newWorld(t)
	nc := w.js.Conn()
	w.ns.Shutdown()
	poll.Until(t, 15*time.Second, "the connection to notice", func() bool { return !nc.IsConnected() })

	b := NewBucket(w.js, bucket)
	sent := nc.Stats().OutMsgs
	slow, cancelSlow := context.WithTimeout(context.Background(), 10*time.Second)
	looking := make(chan struct{})
	go func() {
		defer close(looking)
		_, _ = b.Open(slow)
	}()
	defer func() { cancelSlow(); <-looking }()
	poll.Until(t, 15*time.Second, "the first lookup to be sent", func() bool { return nc.Stats().OutMsgs > sent })

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := b.Open(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Open = %v, want its ctx's deadline", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Open with a 100 ms ctx took %s behind another lookup", d)
	}
}

// TestRunSaysWhenDenied: a watch the server refuses a permission for is
// logged as an error naming the refusal, not as a bucket not created yet.
func TestRunSaysWhenDenied(t *testing.T) {
	s := natstest.StartSecured(t)
	owner, err := jetstream.New(natstest.ConnectAs(t, s, "session"))
	if err != nil {
		t.Fatal(err)
	}
	natstest.CreateKeyValue(t, owner, jetstream.KeyValueConfig{Bucket: "wxlogin_qr"})
	js, err := jetstream.New(natstest.ConnectAs(t, s, "events")) // may read the event stream only
	if err != nil {
		t.Fatal(err)
	}
	logs := &logtest.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, NewBucket(js, "wxlogin_qr"), Options{}, &view{}, slog.New(slog.NewTextHandler(logs, nil)))
	}()
	defer func() { cancel(); <-done }()
	poll.Until(t, 15*time.Second, "the refusal logged", func() bool {
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, "level=ERROR") && strings.Contains(line, "Permissions Violation") && strings.Contains(line, "lacks a permission") {
				return true
			}
		}
		return false
	})
}
