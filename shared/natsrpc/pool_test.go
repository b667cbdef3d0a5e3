package natsrpc_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/natsrpc"
	"github.com/wxlogin/wxlogin/shared/natstest"
)

// fakeRequest is a micro.Request delivered straight to a handler, so a test
// controls exactly when requests arrive relative to Close and Wait.
type fakeRequest struct {
	hdr     micro.Headers
	data    []byte
	replied chan *nats.Msg // one answer
}

func newFakeRequest(data string, hdr micro.Headers) *fakeRequest {
	if hdr == nil {
		hdr = micro.Headers{}
	}
	return &fakeRequest{hdr: hdr, data: []byte(data), replied: make(chan *nats.Msg, 2)}
}

func (r *fakeRequest) Respond(data []byte, opts ...micro.RespondOpt) error {
	m := &nats.Msg{Data: data, Header: nats.Header{}}
	for _, o := range opts {
		o(m)
	}
	r.replied <- m
	return nil
}

func (r *fakeRequest) RespondJSON(any, ...micro.RespondOpt) error { return r.Respond([]byte("{}")) }
func (r *fakeRequest) Error(string, string, []byte, ...micro.RespondOpt) error {
	return errors.New("natsrpc must not call Error (it races with micro)")
}
func (r *fakeRequest) Data() []byte           { return r.data }
func (r *fakeRequest) Headers() micro.Headers { return r.hdr }
func (r *fakeRequest) Subject() string        { return "test.fake" }
func (r *fakeRequest) Reply() string          { return "_INBOX.fake" }

func (r *fakeRequest) answer(t *testing.T) *nats.Msg {
	t.Helper()
	select {
	case m := <-r.replied:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no answer")
		return nil
	}
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestPoolClose(t *testing.T) {
	t.Run("closed pool answers service_unavailable without running the handler", func(t *testing.T) {
		pool := natsrpc.NewPool(2, time.Second, discard())
		var ran atomic.Int32
		h := natsrpc.Endpoint(pool, func(context.Context, echoReq) (echoResp, error) {
			ran.Add(1)
			return echoResp{}, nil
		})
		pool.Close()
		req := newFakeRequest(`{}`, nil)
		h.Handle(req)
		m := req.answer(t)
		if code := m.Header.Get(micro.ErrorCodeHeader); code != string(api.CodeServiceUnavailable) {
			t.Errorf("code %q, want service_unavailable", code)
		}
		pool.Wait()
		if ran.Load() != 0 {
			t.Errorf("handler ran %d times after Close", ran.Load())
		}
	})

	t.Run("Wait waits for handlers accepted before Close", func(t *testing.T) {
		pool := natsrpc.NewPool(2, 5*time.Second, discard())
		started, release := make(chan struct{}), make(chan struct{})
		h := natsrpc.Endpoint(pool, func(context.Context, echoReq) (echoResp, error) {
			close(started)
			<-release
			return echoResp{}, nil
		})
		req := newFakeRequest(`{}`, nil)
		h.Handle(req)
		<-started
		pool.Close()
		waited := make(chan struct{})
		go func() { pool.Wait(); close(waited) }()
		select {
		case <-waited:
			t.Fatal("Wait returned while a handler was running")
		case <-time.After(50 * time.Millisecond): // a negative check: give Wait a chance to be wrong
		}
		close(release)
		<-waited
		if code := req.answer(t).Header.Get(micro.ErrorCodeHeader); code != "" {
			t.Errorf("accepted request answered with error %q", code)
		}
	})

	// Requests keep arriving (as micro's buffered ones do after Stop) while
	// the pool is closed and waited for: each gets exactly one answer, and
	// none starts a handler after Wait returned. Under -race this also
	// checks that wg.Add never races Wait.
	t.Run("requests racing Close and Wait", func(t *testing.T) {
		for round := range 20 {
			pool := natsrpc.NewPool(4, time.Second, discard())
			var waitDone atomic.Bool
			var lateRuns atomic.Int32
			h := natsrpc.Endpoint(pool, func(context.Context, echoReq) (echoResp, error) {
				if waitDone.Load() {
					lateRuns.Add(1)
				}
				return echoResp{}, nil
			})
			var wg sync.WaitGroup
			reqs := make([]*fakeRequest, 200)
			for i := range reqs {
				reqs[i] = newFakeRequest(`{}`, nil)
			}
			for g := range 4 {
				wg.Go(func() {
					for i := g; i < len(reqs); i += 4 {
						h.Handle(reqs[i])
					}
				})
			}
			pool.Close()
			pool.Wait()
			waitDone.Store(true)
			wg.Wait()
			for i, r := range reqs {
				r.answer(t)
				if len(r.replied) != 0 {
					t.Fatalf("round %d: request %d answered twice", round, i)
				}
			}
			if n := lateRuns.Load(); n != 0 {
				t.Fatalf("round %d: %d handlers ran after Wait returned", round, n)
			}
		}
	})
}

func TestDeadlinePropagation(t *testing.T) {
	ns := natstest.Start(t)
	nc := natstest.Connect(t, ns)
	const poolTimeout = 10 * time.Second
	pool := natsrpc.NewPool(4, poolTimeout, discard())
	deadlines := make(chan time.Time, 1)
	svc, err := micro.AddService(nc, micro.Config{Name: "deadline", Version: "0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	err = svc.AddEndpoint("deadline", natsrpc.Endpoint(pool, func(ctx context.Context, r echoReq) (echoResp, error) {
		d, _ := ctx.Deadline()
		deadlines <- d
		if r.Say == "outlive" {
			<-ctx.Done()
			return echoResp{}, fmt.Errorf("querying: %w", ctx.Err())
		}
		return echoResp{}, nil
	}), micro.WithEndpointSubject("test.deadline"))
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name   string
		budget time.Duration // 0: no deadline on the caller's context
		// the handler's deadline, as an offset from the caller's (or from
		// now + the pool timeout without one)
		want time.Duration
	}{
		{"caller deadline sooner than the pool timeout", 800 * time.Millisecond, -50 * time.Millisecond},
		{"caller deadline later than the pool timeout", time.Minute, 0},
		{"no caller deadline: Call's default", 0, -50 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.budget > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.budget)
				defer cancel()
			}
			began := time.Now()
			if err := natsrpc.Call(ctx, nc, "test.deadline", echoReq{}, nil); err != nil {
				t.Fatal(err)
			}
			got := <-deadlines
			var want time.Time
			switch {
			case tc.budget == 0:
				want = began.Add(natsrpc.DefaultTimeout + tc.want)
			case tc.budget > poolTimeout:
				want = began.Add(poolTimeout)
			default:
				want = began.Add(tc.budget + tc.want)
			}
			// The header has millisecond precision, and time passes between
			// began and the handler starting.
			if diff := got.Sub(want); diff < -5*time.Millisecond || diff > 200*time.Millisecond {
				t.Errorf("handler deadline %s off the expected one", diff)
			}
		})
	}

	t.Run("handler running out of the caller's time answers service_unavailable", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
		defer cancel()
		err := natsrpc.Call(ctx, nc, "test.deadline", echoReq{Say: "outlive"}, nil)
		<-deadlines
		var e *api.Error
		// Answered by the service (within the margin), not the caller's own timeout.
		if !errors.As(err, &e) || e.Code != api.CodeServiceUnavailable || e.Message != "the request timed out; try again" {
			t.Fatalf("got %#v", err)
		}
	})

	t.Run("a deadline already passed is not worked on", func(t *testing.T) {
		msg := nats.NewMsg("test.deadline")
		msg.Data = []byte(`{}`)
		msg.Header.Set(natsrpc.HeaderDeadline, strconv.FormatInt(time.Now().Add(-time.Second).UnixMilli(), 10))
		reply, err := nc.RequestMsg(msg, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if code := reply.Header.Get(micro.ErrorCodeHeader); code != string(api.CodeServiceUnavailable) {
			t.Errorf("code %q", code)
		}
		select {
		case <-deadlines:
			t.Error("handler ran for a caller that had given up")
		default:
		}
	})

	t.Run("without the header: the pool timeout", func(t *testing.T) {
		began := time.Now()
		if _, err := nc.Request("test.deadline", []byte(`{}`), 2*time.Second); err != nil {
			t.Fatal(err)
		}
		if diff := (<-deadlines).Sub(began.Add(poolTimeout)); diff < 0 || diff > 200*time.Millisecond {
			t.Errorf("handler deadline %s off the pool timeout", diff)
		}
	})
}

func TestCallCancelled(t *testing.T) {
	ns := natstest.Start(t)
	nc := natstest.Connect(t, ns)
	pool := natsrpc.NewPool(4, 5*time.Second, discard())
	started, release := make(chan struct{}, 1), make(chan struct{})
	t.Cleanup(func() { close(release); pool.Wait() })
	svc, err := micro.AddService(nc, micro.Config{Name: "slow", Version: "0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	err = svc.AddEndpoint("slow", natsrpc.Endpoint(pool, func(context.Context, echoReq) (echoResp, error) {
		started <- struct{}{}
		<-release
		return echoResp{}, nil
	}), micro.WithEndpointSubject("test.slow"))
	if err != nil {
		t.Fatal(err)
	}

	wantCancelled := func(t *testing.T, err error) {
		t.Helper()
		var e *api.Error
		if !errors.As(err, &e) || e.Code != api.CodeServiceUnavailable || e.Message != "request cancelled" {
			t.Fatalf("got %#v, want service_unavailable \"request cancelled\"", err)
		}
	}
	t.Run("cancelled while waiting", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		errs := make(chan error, 1)
		go func() { errs <- natsrpc.Call(ctx, nc, "test.slow", echoReq{}, nil) }()
		<-started
		cancel()
		wantCancelled(t, <-errs)
	})
	t.Run("cancelled before the call", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		wantCancelled(t, natsrpc.Call(ctx, nc, "test.slow", echoReq{}, nil))
	})
}

// TestStoppingReplicaHandsOver: a request a stopping replica refused
// unrun goes to another replica, so a rolling restart loses no call; a
// service that only refuses is asked maxAttempts (3) times, no more.
func TestStoppingReplicaHandsOver(t *testing.T) {
	ns := natstest.Start(t)
	nc := natstest.Connect(t, ns)
	const subject = "test.handover"

	t.Run("the retry reaches the replica still serving", func(t *testing.T) {
		// The stopping replica, as Stop then Close leave it: it takes one
		// request, unsubscribes, and refuses the request unrun. The other
		// replica starts only then, so the first try cannot have reached it.
		var stopping atomic.Int32
		var sub *nats.Subscription
		sub, err := nc.QueueSubscribe(subject, "q", func(m *nats.Msg) {
			stopping.Add(1)
			if err := sub.Unsubscribe(); err != nil {
				t.Error(err)
			}
			svc, err := micro.AddService(nc, micro.Config{Name: "serving", Version: "0.0.1", QueueGroup: "q"})
			if err != nil {
				t.Error(err)
				return
			}
			t.Cleanup(func() { _ = svc.Stop() })
			pool := natsrpc.NewPool(2, time.Second, discard())
			if err := svc.AddEndpoint("e", natsrpc.Endpoint(pool, func(_ context.Context, r echoReq) (echoResp, error) {
				return echoResp{Said: r.Say}, nil
			}), micro.WithEndpointSubject(subject)); err != nil {
				t.Error(err)
			}
			if err := nc.Flush(); err != nil {
				t.Error(err)
			}
			reply := nats.NewMsg(m.Reply)
			reply.Header.Set(micro.ErrorCodeHeader, string(api.CodeServiceUnavailable))
			reply.Header.Set(micro.ErrorHeader, "stopping")
			reply.Header.Set(natsrpc.HeaderNotRun, "1")
			if err := m.RespondMsg(reply); err != nil {
				t.Error(err)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		var out echoResp
		if err := natsrpc.Call(context.Background(), nc, subject, echoReq{Say: "hi"}, &out); err != nil || out.Said != "hi" {
			t.Fatalf("got %+v, %v; want the serving replica's answer", out, err)
		}
		if n := stopping.Load(); n != 1 {
			t.Fatalf("the stopping replica saw %d requests, want 1", n)
		}
	})

	t.Run("a service that only refuses is asked three times", func(t *testing.T) {
		svc, err := micro.AddService(nc, micro.Config{Name: "refusing", Version: "0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		defer svc.Stop()
		pool := natsrpc.NewPool(2, time.Second, discard())
		pool.Close()
		if err := svc.AddEndpoint("e", natsrpc.Endpoint(pool, func(context.Context, echoReq) (echoResp, error) {
			t.Error("a closed pool ran a handler")
			return echoResp{}, nil
		}), micro.WithEndpointSubject(subject+".refusing")); err != nil {
			t.Fatal(err)
		}
		err = natsrpc.Call(context.Background(), nc, subject+".refusing", echoReq{}, nil)
		var e *api.Error
		if !errors.As(err, &e) || e.Code != api.CodeServiceUnavailable {
			t.Fatalf("got %v, want service_unavailable", err)
		}
		if n := svc.Stats().Endpoints[0].NumRequests; n != 3 {
			t.Fatalf("the refusing service was asked %d times, want 3", n)
		}
	})
}
