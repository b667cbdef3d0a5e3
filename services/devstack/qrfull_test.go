package main

import (
	"net/http"
	"testing"
)

// TestQRBucketFullProcesses: with a small QR bucket (WXLOGIN_QR_MAX_BYTES),
// unauthenticated ticket creation fills it and is then refused with 503
// service_unavailable, never a 500, while the tickets already created still
// answer their polls.
func TestQRBucketFullProcesses(t *testing.T) {
	p := startProcs(t, "WXLOGIN_QR_MAX_BYTES=16384")
	type ticket struct{ id, poll string }
	var made []ticket
	var refused response
	for range 200 {
		r := postJSON(t, p.url("/api/v1/auth/web/qr"), map[string]any{})
		if r.status != http.StatusCreated {
			refused = r
			break
		}
		made = append(made, ticket{str(r, "ticket"), str(r, "poll_token")})
	}
	if refused.status != http.StatusServiceUnavailable || str(refused, "code") != "service_unavailable" {
		t.Fatalf("after %d tickets: %d %s, want 503 service_unavailable", len(made), refused.status, refused.raw)
	}
	if len(made) < 5 {
		t.Fatalf("only %d tickets before the bucket was full", len(made))
	}
	// Still full: refused again, the same way.
	if r := postJSON(t, p.url("/api/v1/auth/web/qr"), map[string]any{}); r.status != http.StatusServiceUnavailable {
		t.Fatalf("second create when full: %d %s", r.status, r.raw)
	}
	for _, tk := range []ticket{made[0], made[len(made)-1]} {
		if r := poll(t, p, tk.id, tk.poll); r.status != http.StatusOK || str(r, "status") != "pending" {
			t.Errorf("poll of an existing ticket when full: %d %s", r.status, r.raw)
		}
	}
}
