package identitysvc_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/services/identity/identitysvc"
	"github.com/wxlogin/wxlogin/services/identity/internal/wxauth"
	"github.com/wxlogin/wxlogin/shared/api/identity"
	"github.com/wxlogin/wxlogin/shared/api/session"
	"github.com/wxlogin/wxlogin/shared/poll"
)

// httpGet returns the status and body of GET url.
func httpGet(url string) (int, string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// waitReadyz polls the ops server at addr until /readyz answers status
// with a body containing want.
func waitReadyz(t *testing.T, addr string, status int, want string) {
	t.Helper()
	poll.UntilNil(t, 15*time.Second, fmt.Sprintf("/readyz %d containing %q", status, want), func() error {
		code, body, err := httpGet("http://" + addr + "/readyz")
		if err == nil && code == status && strings.Contains(body, want) {
			return nil
		}
		return fmt.Errorf("/readyz = %d %q (%v)", code, body, err)
	})
}

func TestReplicas(t *testing.T) {
	e := newEnv(t)

	// A cluster cannot run in a unit test; a single server refuses more than
	// one replica, and Run says which variable to fix instead of retrying.
	t.Run("3 on a single server", func(t *testing.T) {
		cfg := identitysvc.DefaultConfig()
		cfg.NATSURL, cfg.DatabaseURL, cfg.NATSReplicas = e.ns.ClientURL(), e.dsn, 3
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		err := identitysvc.Run(ctx, cfg, slog.New(slog.DiscardHandler))
		if err == nil || !strings.HasPrefix(err.Error(), "WXLOGIN_NATS_REPLICAS: 3 replicas need a NATS cluster") {
			t.Fatalf("Run = %v, want an error naming WXLOGIN_NATS_REPLICAS", err)
		}
		if ctx.Err() != nil {
			t.Fatal("Run retried instead of failing")
		}
	})

	t.Run("default 1", func(t *testing.T) {
		s := e.start(t, nil)
		js, err := jetstream.New(s.nc)
		if err != nil {
			t.Fatal(err)
		}
		ctx := ctx5s(t)
		stream, err := js.Stream(ctx, identity.EventStream)
		if err != nil {
			t.Fatal(err)
		}
		if r := stream.CachedInfo().Config.Replicas; r != 1 {
			t.Errorf("stream %s has %d replicas, want 1", identity.EventStream, r)
		}
		// Created at start, before anything used them.
		for _, bucket := range []string{session.BucketBind, wxauth.BucketWechat} {
			kv, err := js.KeyValue(ctx, bucket)
			if err != nil {
				t.Fatalf("%s: %v", bucket, err)
			}
			st, err := kv.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if r := st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.Replicas; r != 1 {
				t.Errorf("bucket %s has %d replicas, want 1", bucket, r)
			}
		}
	})

	// Raising the count on a server that has the assets already is refused too.
	t.Run("3 after 1", func(t *testing.T) {
		cfg := identitysvc.DefaultConfig()
		cfg.NATSURL, cfg.DatabaseURL, cfg.NATSReplicas = e.ns.ClientURL(), e.dsn, 3
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		err := identitysvc.Run(ctx, cfg, slog.New(slog.DiscardHandler))
		if err == nil || !strings.HasPrefix(err.Error(), "WXLOGIN_NATS_REPLICAS:") {
			t.Fatalf("Run = %v, want an error naming WXLOGIN_NATS_REPLICAS", err)
		}
	})
}
