package qrwatch

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/shared/api/session"
	"github.com/wxlogin/wxlogin/shared/natstest"
)

type world struct {
	js jetstream.JetStream
	tk *Tickets
}

// start runs Tickets against an embedded JetStream; the bucket is created
// by create, as the session service would.
func start(t *testing.T) (*world, context.CancelFunc) {
	t.Helper()
	ns := natstest.Start(t)
	nc := natstest.Connect(t, ns)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	w := &world{js: js, tk: New(js, slog.New(slog.NewTextHandler(t.Output(), nil)))}
	w.tk.checkEvery = 50 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.tk.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return w, cancel
}

func (w *world) create(t *testing.T) jetstream.KeyValue {
	t.Helper()
	return natstest.CreateKeyValue(t, w.js, jetstream.KeyValueConfig{Bucket: session.BucketQR, TTL: time.Minute})
}

func putRecord(t *testing.T, kv jetstream.KeyValue, ticket, status string) uint64 {
	t.Helper()
	b, _ := json.Marshal(session.QRRecord{Status: status, AppID: "wx2222222222222222", ExpiresAt: time.Now().Add(time.Minute)})
	rev, err := kv.Put(context.Background(), ticket, b)
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

// next waits for the waiter's next change.
func next(t *testing.T, w *Waiter) Change {
	t.Helper()
	select {
	case ch := <-w.C():
		return ch
	case <-time.After(10 * time.Second):
		t.Fatal("no change delivered")
		return Change{}
	}
}

func TestGet(t *testing.T) {
	w, _ := start(t)
	ctx := context.Background()
	if _, err := w.tk.Get(ctx, "t1"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("without the bucket: %v, want ErrUnavailable", err)
	}
	kv := w.create(t)
	if _, err := w.tk.Get(ctx, "t1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing ticket: %v, want ErrNotFound", err)
	}
	rev := putRecord(t, kv, "t1", session.QRPending)
	r, err := w.tk.Get(ctx, "t1")
	if err != nil || r.Status != session.QRPending || r.Revision != rev {
		t.Fatalf("Get = %+v, %v", r, err)
	}
	if err := kv.Delete(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.tk.Get(ctx, "t1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted ticket: %v, want ErrNotFound", err)
	}
}

func TestWatch(t *testing.T) {
	w, stopRun := start(t)
	// Registered before the bucket exists, so before the shared watch
	// starts, which then tells it to re-read.
	first := w.tk.Watch("t1")
	kv := w.create(t)
	putRecord(t, kv, "t1", session.QRPending)

	if ch := next(t, first); !ch.Recheck {
		t.Fatalf("first change %+v, want a recheck as the watch starts", ch)
	}

	other := w.tk.Watch("t2")
	rev := putRecord(t, kv, "t1", session.QRConfirmed)
	ch := next(t, first)
	if ch.Record == nil || ch.Record.Status != session.QRConfirmed || ch.Record.Revision != rev {
		t.Fatalf("change %+v, want the confirmed record at revision %d", ch, rev)
	}
	select {
	case ch := <-other.C():
		t.Fatalf("a waiter of another ticket got %+v", ch)
	default:
	}

	// Only the newest undelivered change is kept.
	putRecord(t, kv, "t1", session.QRDenied)
	if err := kv.Delete(context.Background(), "t1"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		ch := next(t, first)
		if ch.Deleted {
			break
		}
		if ch.Record == nil || time.Now().After(deadline) {
			t.Fatalf("change %+v, want the deletion", ch)
		}
	}

	first.Stop()
	other.Stop()
	if n := w.tk.Waiting(); n != 0 {
		t.Errorf("%d tickets still watched after Stop", n)
	}

	t.Run("a re-created bucket makes waiters re-read", func(t *testing.T) {
		wt := w.tk.Watch("t3")
		defer wt.Stop()
		if err := w.js.DeleteKeyValue(context.Background(), session.BucketQR); err != nil {
			t.Fatal(err)
		}
		kv = w.create(t)
		for {
			if ch := next(t, wt); ch.Recheck {
				break
			}
		}
		rev := putRecord(t, kv, "t3", session.QRConfirmed)
		ch := next(t, wt)
		for ch.Recheck {
			ch = next(t, wt)
		}
		if ch.Record == nil || ch.Record.Revision != rev {
			t.Fatalf("change %+v after re-creation, want revision %d", ch, rev)
		}
	})

	t.Run("stopping releases waiters", func(t *testing.T) {
		wt := w.tk.Watch("t4")
		defer wt.Stop()
		stopRun()
		select {
		case <-wt.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("Done not closed after Run ended")
		}
	})
}

func TestOfferKeepsTheNewest(t *testing.T) {
	tk := &Tickets{waiters: map[string]map[*Waiter]struct{}{}, done: make(chan struct{})}
	w := tk.Watch("t")
	w.offer(Change{Record: &Record{Revision: 1}})
	w.offer(Change{Record: &Record{Revision: 2}})
	if ch := <-w.C(); ch.Record.Revision != 2 {
		t.Errorf("got revision %d, want 2", ch.Record.Revision)
	}
	select {
	case ch := <-w.C():
		t.Errorf("stale change %+v left over", ch)
	default:
	}
}
