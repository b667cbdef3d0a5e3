package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestProbe(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			w.WriteHeader(http.StatusOK)
		case "/nocontent":
			w.WriteHeader(http.StatusNoContent)
		case "/down":
			w.WriteHeader(http.StatusServiceUnavailable)
		case "/hang":
			select {
			case <-release:
			case <-r.Context().Done():
			}
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })

	tests := []struct {
		name    string
		url     string
		wantErr bool
	}{
		{"2xx is healthy", srv.URL + "/ok", false},
		{"204 is healthy", srv.URL + "/nocontent", false},
		{"503 is unhealthy", srv.URL + "/down", true},
		{"404 is unhealthy", srv.URL + "/missing", true},
		{"a hung server is unhealthy", srv.URL + "/hang", true},
		{"nothing listening is unhealthy", "http://127.0.0.1:1/healthz", true},
		{"a malformed url is an error", "http://[::1", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			err := probe(ctx, srv.Client(), tt.url)
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Fatalf("probe(%s) = %v, want error %v", tt.url, err, tt.wantErr)
			}
		})
	}
}

func TestRunUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"a", "b"}} {
		if err := run(args); err == nil {
			t.Errorf("run(%q) = nil, want a usage error", args)
		}
	}
}
