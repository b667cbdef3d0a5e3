package sessionsvc_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/shared/freeaddr"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/session"
	"github.com/wxlogin/wxlogin/shared/natstest"

	"github.com/wxlogin/wxlogin/services/session/sessionsvc"
	"github.com/wxlogin/wxlogin/shared/poll"
)

// freeAddr returns a loopback address with a port that was free a moment
// ago: Run takes an address, not a listener.

func httpGet(t *testing.T, url string) (int, string, error) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// waitStatus polls url until it answers status.
func waitStatus(t *testing.T, url string, status int) string {
	t.Helper()
	var body string
	poll.UntilNil(t, 10*time.Second, fmt.Sprintf("GET %s to answer %d", url, status), func() error {
		got, b, err := httpGet(t, url)
		if err == nil && got == status {
			body = b
			return nil
		}
		return fmt.Errorf("GET %s: %d %q (%v)", url, got, b, err)
	})
	return body
}

func TestMetricsAndHealth(t *testing.T) {
	s := natstest.Start(t)
	nc := natstest.Connect(t, s)
	cfg := config(s)
	cfg.MetricsAddr = freeaddr.Addr(t)
	start(t, cfg, nc)
	base := "http://" + cfg.MetricsAddr

	for _, path := range []string{"/readyz", "/livez", "/healthz"} {
		if body := waitStatus(t, base+path, http.StatusOK); strings.TrimSpace(body) != `{"status":"ok"}` {
			t.Fatalf("%s body %q", path, body)
		}
	}

	client := session.NewClient(nc)
	const user = "metrics-test-user-7f3a"
	tok, err := client.Issue(call(t), session.IssueRequest{UserID: user, Kind: api.KindPassword})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Refresh(call(t), tok.RefreshToken); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Refresh(call(t), tok.RefreshToken); api.CodeOf(err) != api.CodeRefreshTokenReused {
		t.Fatalf("replayed refresh token: %v", err)
	}

	status, metrics, err := httpGet(t, base+"/metrics")
	if err != nil || status != http.StatusOK {
		t.Fatalf("/metrics: %d, %v", status, err)
	}
	for _, want := range []string{
		fmt.Sprintf(`wxlogin_session_requests_total{code="ok",subject=%q} 1`, session.SubjectIssue),
		fmt.Sprintf(`wxlogin_session_requests_total{code="ok",subject=%q} 1`, session.SubjectRefresh),
		fmt.Sprintf(`wxlogin_session_requests_total{code="refresh_token_reused",subject=%q} 1`, session.SubjectRefresh),
		fmt.Sprintf(`wxlogin_session_request_duration_seconds_count{subject=%q} 2`, session.SubjectRefresh),
		fmt.Sprintf(`wxlogin_session_request_duration_seconds_bucket{subject=%q,le="+Inf"} 1`, session.SubjectIssue),
		`wxlogin_session_tokens_issued_total{kind="password"} 2`, // the login and the refresh
		`wxlogin_session_tokens_issued_total{kind="web"} 0`,
		`wxlogin_session_refresh_reuse_detected_total 1`,
		"go_goroutines ",
		"process_resident_memory_bytes ",
	} {
		if !strings.Contains(metrics, "\n"+want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(metrics, tok.RefreshToken) || strings.Contains(metrics, user) {
		t.Error("/metrics shows a token or a user id")
	}

	// Without NATS the replica cannot serve: unready but alive (a liveness
	// probe must not restart it for a NATS outage), while metrics stay up.
	s.Shutdown()
	body := waitStatus(t, base+"/readyz", http.StatusServiceUnavailable)
	if !strings.Contains(body, `"status":"unavailable"`) {
		t.Fatalf("/readyz body without NATS %q", body)
	}
	if status, body, err := httpGet(t, base+"/livez"); err != nil || status != http.StatusOK {
		t.Fatalf("/livez without NATS: %d %q, %v", status, body, err)
	}
	if status, _, err := httpGet(t, base+"/metrics"); err != nil || status != http.StatusOK {
		t.Fatalf("/metrics without NATS: %d, %v", status, err)
	}
}

// TestStopWithoutNATS: with NATS gone, cancelling Run's ctx ends it within
// 2 s: stopping its KV watches (user cut-offs, signing keys) and its
// connection must not wait on requests to the absent server.
func TestStopWithoutNATS(t *testing.T) {
	s := natstest.Start(t)
	cfg := config(s)
	cfg.MetricsAddr = freeaddr.Addr(t)
	ready := "http://" + cfg.MetricsAddr + "/readyz"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- sessionsvc.Run(ctx, cfg, testLog(t)) }()
	waitStatus(t, ready, http.StatusOK) // serving: both watches have loaded

	s.Shutdown()
	waitStatus(t, ready, http.StatusServiceUnavailable)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v after cancel, want nil", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not return within 2 s of cancel while NATS is down")
	}
}

func TestReplicas(t *testing.T) {
	s := natstest.Start(t)
	nc := natstest.Connect(t, s)

	// A cluster cannot run in a unit test; a single server refuses more than
	// one replica, and Run says which variable to fix.
	t.Run("3 on a single server", func(t *testing.T) {
		cfg := config(s)
		cfg.NATSReplicas = 3
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := sessionsvc.Run(ctx, cfg, testLog(t))
		if err == nil || !strings.HasPrefix(err.Error(), "WXLOGIN_NATS_REPLICAS: 3 replicas need a NATS cluster") {
			t.Fatalf("Run = %v, want an error naming WXLOGIN_NATS_REPLICAS", err)
		}
		if ctx.Err() != nil {
			t.Fatal("Run retried instead of failing")
		}
	})
	t.Run("rotate-key with 3 on a single server", func(t *testing.T) {
		cfg := config(s)
		cfg.NATSReplicas = 3
		if _, err := sessionsvc.RotateKey(call(t), cfg, testLog(t), 0); err == nil || !strings.HasPrefix(err.Error(), "WXLOGIN_NATS_REPLICAS:") {
			t.Fatalf("RotateKey = %v, want an error naming WXLOGIN_NATS_REPLICAS", err)
		}
	})

	t.Run("default 1", func(t *testing.T) {
		start(t, config(s), nc)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		for _, bucket := range []string{session.BucketSessions, session.BucketRevoked, session.BucketQR, session.BucketKeys} {
			kv, err := js.KeyValue(call(t), bucket)
			if err != nil {
				t.Fatalf("%s: %v", bucket, err)
			}
			st, err := kv.Status(call(t))
			if err != nil {
				t.Fatal(err)
			}
			if r := st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.Replicas; r != 1 {
				t.Errorf("%s has %d replicas, want 1", bucket, r)
			}
		}
	})
}
