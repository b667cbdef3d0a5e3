package natsrpc_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/natsrpc"
	"github.com/wxlogin/wxlogin/shared/natstest"
)

// TestStoreFull: a handler whose KV bucket is at its byte cap answers
// service_unavailable, not internal; a bucket with room still works.
func TestStoreFull(t *testing.T) {
	ns := natstest.Start(t)
	nc := natstest.Connect(t, ns)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "full", History: 1, MaxBytes: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	pool := natsrpc.NewPool(2, 5*time.Second, discard())
	t.Cleanup(pool.Wait)
	svc, err := micro.AddService(nc, micro.Config{Name: "store", Version: "0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	n := 0
	err = svc.AddEndpoint("put", natsrpc.Endpoint(pool, func(ctx context.Context, _ echoReq) (echoResp, error) {
		n++
		if _, err := kv.Create(ctx, fmt.Sprint("k", n), []byte(strings.Repeat("x", 200))); err != nil {
			return echoResp{}, fmt.Errorf("create: %w", err)
		}
		return echoResp{}, nil
	}), micro.WithEndpointSubject("test.put"))
	if err != nil {
		t.Fatal(err)
	}

	for i := range 100 {
		err := natsrpc.Call(ctx, nc, "test.put", echoReq{}, nil)
		if err == nil {
			continue
		}
		var e *api.Error
		if !errors.As(err, &e) || e.Code != api.CodeServiceUnavailable {
			t.Fatalf("call %d: %#v, want service_unavailable", i, err)
		}
		if i == 0 {
			t.Fatal("full from the first write")
		}
		return
	}
	t.Fatal("the 4 KiB bucket never filled")
}
