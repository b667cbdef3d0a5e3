package natsrpc_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/natsauth"
	"github.com/wxlogin/wxlogin/shared/natsrpc"
	"github.com/wxlogin/wxlogin/shared/natstest"
	"github.com/wxlogin/wxlogin/shared/poll"
)

type echoReq struct {
	Say string `json:"say"`
}

type echoResp struct {
	Said      string `json:"said"`
	RequestID string `json:"request_id"`
}

func TestCallAndEndpoint(t *testing.T) {
	ns := natstest.Start(t)
	nc := natstest.Connect(t, ns)
	pool := natsrpc.NewPool(4, time.Second, slog.New(slog.NewTextHandler(io.Discard, nil)))
	var inFlight, peak atomic.Int32
	release := make(chan struct{})
	svc, err := micro.AddService(nc, micro.Config{Name: "echo", Version: "0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()
	err = svc.AddEndpoint("echo", natsrpc.Endpoint(pool, func(ctx context.Context, r echoReq) (echoResp, error) {
		switch r.Say {
		case "fail":
			return echoResp{}, &api.Error{Code: api.CodeUsernameTaken, Message: "taken", Data: map[string]string{"k": "v"}}
		case "boom":
			return echoResp{}, errors.New("database password is hunter2")
		case "block":
			n := inFlight.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			<-release
			inFlight.Add(-1)
		}
		return echoResp{Said: r.Say, RequestID: natsrpc.RequestID(ctx)}, nil
	}), micro.WithEndpointSubject("test.echo"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := natsrpc.WithRequestID(context.Background(), "rid-1")

	t.Run("reply and request id", func(t *testing.T) {
		var out echoResp
		if err := natsrpc.Call(ctx, nc, "test.echo", echoReq{Say: "hi"}, &out); err != nil || out.Said != "hi" || out.RequestID != "rid-1" {
			t.Fatalf("got %+v, %v", out, err)
		}
	})
	t.Run("contract error with data", func(t *testing.T) {
		err := natsrpc.Call(ctx, nc, "test.echo", echoReq{Say: "fail"}, nil)
		var e *api.Error
		if !errors.As(err, &e) || e.Code != api.CodeUsernameTaken || e.Data["k"] != "v" {
			t.Fatalf("got %#v", err)
		}
	})
	t.Run("unexpected error is internal and hides its text", func(t *testing.T) {
		err := natsrpc.Call(ctx, nc, "test.echo", echoReq{Say: "boom"}, nil)
		var e *api.Error
		if !errors.As(err, &e) || e.Code != api.CodeInternal || e.Message != "internal error" {
			t.Fatalf("got %#v", err)
		}
	})
	t.Run("malformed request", func(t *testing.T) {
		msg, err := nc.Request("test.echo", []byte("{"), time.Second)
		if err != nil || msg.Header.Get(micro.ErrorCodeHeader) != string(api.CodeInvalidRequest) {
			t.Fatalf("got %v %v", msg, err)
		}
	})
	t.Run("no responders", func(t *testing.T) {
		began := time.Now()
		err := natsrpc.Call(context.Background(), nc, "test.nobody", echoReq{}, nil)
		if api.CodeOf(err) != api.CodeServiceUnavailable || time.Since(began) > time.Second {
			t.Fatalf("got %v after %s", err, time.Since(began))
		}
	})
	t.Run("closed connection", func(t *testing.T) {
		closed := natstest.Connect(t, ns)
		closed.Close()
		if err := natsrpc.Call(context.Background(), closed, "test.echo", echoReq{}, nil); api.CodeOf(err) != api.CodeServiceUnavailable {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("pool bounds concurrency and serves in parallel", func(t *testing.T) {
		errs := make(chan error, 8)
		for range 8 {
			go func() {
				cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
				errs <- natsrpc.Call(cctx, nc, "test.echo", echoReq{Say: "block"}, nil)
			}()
		}
		poll.Until(t, 5*time.Second, "the pool to fill", func() bool { return inFlight.Load() >= 4 })
		if got := inFlight.Load(); got != 4 {
			t.Fatalf("in flight = %d, want the pool size 4 at once", got)
		}
		close(release)
		for range 8 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		if peak.Load() != 4 {
			t.Fatalf("peak concurrency %d, want 4", peak.Load())
		}
	})
}

// A consumer of the event stream whose deliver subject names an endpoint
// (the events user may create one; the server delivers on its behalf)
// reaches the subscription, but the endpoint does not take it for a
// request: the handler never runs. A real request still does.
func TestEndpointIgnoresJetStreamDeliveries(t *testing.T) {
	ns := natstest.StartSecured(t)
	pool := natsrpc.NewPool(4, time.Second, slog.New(slog.NewTextHandler(io.Discard, nil)))
	var calls atomic.Int32
	svc, err := micro.AddService(natstest.ConnectAs(t, ns, natsauth.Session), micro.Config{Name: "session", Version: "0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()
	const subject = "wxlogin.session.issue"
	if err := svc.AddEndpoint("issue", natsrpc.Endpoint(pool, func(context.Context, echoReq) (echoResp, error) {
		calls.Add(1)
		return echoResp{Said: "token"}, nil
	}), micro.WithEndpointSubject(subject)); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	idJS, err := jetstream.New(natstest.ConnectAs(t, ns, natsauth.Identity))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := idJS.CreateStream(ctx, jetstream.StreamConfig{Name: "WXLOGIN_EVENTS", Subjects: []string{"wxlogin.events.>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := idJS.Publish(ctx, "wxlogin.events.user.created", []byte(`{"say":"forged"}`)); err != nil {
		t.Fatal(err)
	}
	evJS, err := jetstream.New(natstest.ConnectAs(t, ns, natsauth.Events))
	if err != nil {
		t.Fatal(err)
	}
	cons, err := evJS.CreateOrUpdateConsumer(ctx, "WXLOGIN_EVENTS", jetstream.ConsumerConfig{
		Durable: "aimed", DeliverSubject: subject, DeliverGroup: "q", AckPolicy: jetstream.AckExplicitPolicy,
	})
	if err != nil {
		t.Fatalf("events creates a push consumer: %v", err)
	}
	// Delivered (the server says so), yet unanswered and unhandled.
	poll.Until(t, 5*time.Second, "the consumer to deliver", func() bool {
		info, err := cons.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.Delivered.Consumer >= 1
	})
	var resp echoResp
	if err := natsrpc.Call(ctx, natstest.ConnectAs(t, ns, natsauth.Gateway), subject, echoReq{Say: "real"}, &resp); err != nil || resp.Said != "token" {
		t.Fatalf("a real request: %v %+v", err, resp)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("handler ran %d times, want 1 (the real request only)", n)
	}
}
