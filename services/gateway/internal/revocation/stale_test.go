package revocation

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/services/gateway/internal/middleware"
	"github.com/wxlogin/wxlogin/shared/api/session"
	"github.com/wxlogin/wxlogin/shared/jwtverify"
	"github.com/wxlogin/wxlogin/shared/natstest"
	"github.com/wxlogin/wxlogin/shared/poll"
)

func init() { gin.SetMode(gin.ReleaseMode) }

type anyToken struct{}

func (anyToken) Verify(string) (*jwtverify.Claims, error) {
	return &jwtverify.Claims{ID: "j1", SessionID: "s1", Subject: "u1", IssuedAt: time.Unix(1_750_000_000, 0)}, nil
}

// TestStaleView: on a real JetStream, a Bearer route keeps serving while the
// revocation watch has been unhealthy for less than the bound, answers 503
// past it, and serves again once the watch is back; first with the bucket
// deleted, then with the NATS server stopped. The bound is crossed on a fake
// clock; everything else is the real watch noticing, polled with a deadline.
func TestStaleView(t *testing.T) {
	ns := natstest.Start(t)
	nc := natstest.Connect(t, ns)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	createBucket := func() {
		t.Helper()
		natstest.CreateKeyValue(t, js, jetstream.KeyValueConfig{Bucket: session.BucketRevoked, TTL: ttl})
	}
	createBucket()

	const bound = 5 * time.Second
	c := &clock{t: time.Unix(1_750_000_000, 0)}
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	s := New(ttl, bound, log)
	s.now = c.now
	run(t, s, js)

	r := gin.New()
	r.Use(middleware.RequestID())
	r.GET("/me", middleware.RequireLiveToken(anyToken{}, s, log), func(c *gin.Context) { c.Status(http.StatusNoContent) })
	status := func(t *testing.T) int {
		req := httptest.NewRequest(http.MethodGet, "/me", nil)
		req.Header.Set("Authorization", "Bearer t")
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		if w.Code == http.StatusServiceUnavailable && !strings.Contains(w.Body.String(), `"code":"service_unavailable"`) {
			t.Errorf("503 without service_unavailable: %s", w.Body.String())
		}
		return w.Code
	}
	serving := func() bool { return status(t) == http.StatusNoContent }
	unhealthy := func() bool { return s.health.UnhealthyFor() > 0 }

	poll.Until(t, 15*time.Second, "the first load", serving)

	// staleAfterBound: once the watch has noticed, the route serves on
	// within the bound and refuses past it.
	staleAfterBound := func(t *testing.T) {
		t.Helper()
		poll.Until(t, 15*time.Second, "the watch to notice", unhealthy)
		if got := status(t); got != http.StatusNoContent {
			t.Fatalf("within the bound: %d, want 204", got)
		}
		if s.Stale() {
			t.Fatal("stale within the bound")
		}
		c.add(bound + time.Second)
		if got := status(t); got != http.StatusServiceUnavailable {
			t.Fatalf("past the bound: %d, want 503", got)
		}
		if !s.Stale() {
			t.Fatal("not stale past the bound")
		}
	}

	t.Run("bucket deleted", func(t *testing.T) {
		if err := js.DeleteKeyValue(context.Background(), session.BucketRevoked); err != nil {
			t.Fatal(err)
		}
		staleAfterBound(t)
		createBucket()
		poll.Until(t, 15*time.Second, "serving on the re-created bucket", serving)
	})

	t.Run("server stopped", func(t *testing.T) {
		restart := natstest.Stop(t, ns)
		staleAfterBound(t)
		// Still refused for as long as the server is away.
		c.add(time.Minute)
		if got := status(t); got != http.StatusServiceUnavailable {
			t.Fatalf("server still down: %d, want 503", got)
		}
		restart()
		poll.Until(t, 15*time.Second, "serving after the reconnect", serving)
	})
}
