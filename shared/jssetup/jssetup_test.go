package jssetup

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/shared/logtest"
	"github.com/wxlogin/wxlogin/shared/natstest"
	"github.com/wxlogin/wxlogin/shared/poll"
)

func TestRetry(t *testing.T) {
	nc := natstest.Connect(t, natstest.Start(t))
	refused := errors.New("refused")
	tests := []struct {
		name    string
		answers []error // the last one repeats
		cancel  bool    // cancel ctx at the third attempt
		want    error
		calls   int
	}{
		{"transient failures are retried", []error{nats.ErrTimeout, nats.ErrNoResponders, nil}, false, nil, 3},
		{"any other error is returned at once", []error{refused}, false, refused, 1},
		{"a transient failure, then another error", []error{nats.ErrTimeout, refused}, false, refused, 2},
		{"retried until ctx ends", []error{nats.ErrTimeout}, true, context.Canceled, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			logs := &logtest.Buffer{}
			calls := 0
			err := Retry(ctx, nc, slog.New(slog.NewTextHandler(logs, nil)), func(ctx context.Context) error {
				calls++
				if _, ok := ctx.Deadline(); !ok {
					t.Error("attempt without a deadline")
				}
				if tc.cancel && calls == 3 {
					cancel()
				}
				return tc.answers[min(calls, len(tc.answers))-1]
			})
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("Retry = %v, want %v", err, tc.want)
			}
			if calls != tc.calls {
				t.Errorf("%d attempts, want %d", calls, tc.calls)
			}
			// Each retry is logged with its delay: 250 ms, then doubling.
			if tc.calls > 1 && !strings.Contains(logs.String(), "retry_in=250ms") {
				t.Errorf("no retry logged with its delay: %s", logs.String())
			}
			if tc.calls > 2 && !tc.cancel && !strings.Contains(logs.String(), "retry_in=500ms") {
				t.Errorf("the delay does not double: %s", logs.String())
			}
		})
	}
}

// TestBucketWaitEndsWithCtx: with the server gone a create lasts until its
// ctx ends; a call behind it gives up when its own ctx does.
func TestBucketWaitEndsWithCtx(t *testing.T) {
	s := natstest.Start(t)
	nc := natstest.Connect(t, s)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s.Shutdown()
	poll.Until(t, 10*time.Second, "the connection to notice", func() bool { return !nc.IsConnected() })

	b := NewBucket(js, jetstream.KeyValueConfig{Bucket: "jssetup_test"})
	sent := nc.Stats().OutMsgs
	slow, cancelSlow := context.WithTimeout(context.Background(), 10*time.Second)
	creating := make(chan struct{})
	go func() {
		defer close(creating)
		_, _ = b.KV(slow)
	}()
	defer func() { cancelSlow(); <-creating }()
	poll.Until(t, 10*time.Second, "the first create to be sent", func() bool { return nc.Stats().OutMsgs > sent })

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := b.KV(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("KV = %v, want its ctx's deadline", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("KV with a 100 ms ctx took %s behind another create", d)
	}
}

// TestRetryStopsWhenDenied: a setup the server refuses a permission for
// fails at once, naming the refusal, instead of retrying as if JetStream
// were not up yet; the same setup as an allowed user succeeds.
func TestRetryStopsWhenDenied(t *testing.T) {
	s := natstest.StartSecured(t)
	create := func(nc *nats.Conn) func(context.Context) error {
		return func(ctx context.Context) error {
			js, err := jetstream.New(nc)
			if err != nil {
				return err
			}
			// The refused request gets no answer: only its timeout ends it.
			ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			defer cancel()
			_, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "wxlogin_qr"})
			return err
		}
	}
	logs := &logtest.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	// A deadline, so that a Retry that does not see the refusal fails the
	// test instead of retrying for ever.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	calls := 0
	events := natstest.ConnectAs(t, s, "events")
	fn := create(events)
	err := Retry(ctx, events, log, func(ctx context.Context) error {
		calls++
		return fn(ctx)
	})
	if err == nil || !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), "lacks a permission") {
		t.Fatalf("%d attempts, error %v; want the permissions violation, named", calls, err)
	}
	if calls != 1 {
		t.Errorf("%d attempts, want 1: a refusal is no outage", calls)
	}
	owner := natstest.ConnectAs(t, s, "session")
	if err := Retry(ctx, owner, log, create(owner)); err != nil {
		t.Fatalf("the bucket's owner: %v", err)
	}
}
