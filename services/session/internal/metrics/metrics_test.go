package metrics

import (
	"context"
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wxlogin/wxlogin/shared/api"
)

func TestInstrument(t *testing.T) {
	m := New("web")
	fail := errors.New("kv down")
	fn := Instrument(m, "wxlogin.session.test", func(_ context.Context, err error) (int, error) { return 7, err })
	for _, err := range []error{nil, nil, api.Errorf(api.CodeTokenRevoked, "revoked"), fail} {
		if n, got := fn(context.Background(), err); n != 7 || got != err {
			t.Fatalf("wrapped fn = %d, %v; want 7, %v", n, got, err)
		}
	}
	tests := []struct {
		code string
		want float64
	}{
		{"ok", 2},
		{"token_revoked", 1},
		{"internal_error", 1}, // an error without a contract code
		{"token_invalid", 0},
	}
	for _, tc := range tests {
		t.Run(tc.code, func(t *testing.T) {
			if got := testutil.ToFloat64(m.requests.WithLabelValues("wxlogin.session.test", tc.code)); got != tc.want {
				t.Fatalf("requests{code=%s} = %v, want %v", tc.code, got, tc.want)
			}
		})
	}
	if n := testutil.CollectAndCount(m.duration, NameRequestDuration); n != 1 {
		t.Fatalf("%d duration series, want 1", n)
	}
}

func TestCountersAndRegistry(t *testing.T) {
	m := New("miniprogram", "web", "password")
	m.TokensIssued("web")
	m.TokensIssued("web")
	m.RefreshReuse()
	if got := testutil.ToFloat64(m.issued.WithLabelValues("web")); got != 2 {
		t.Errorf("issued{web} = %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.reuse); got != 1 {
		t.Errorf("reuse = %v, want 1", got)
	}
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, f := range families {
		have[f.GetName()] = true
	}
	// Requests have not happened yet, so only the series that exist from the
	// start are gathered: the pre-made kinds, reuse, runtime and process.
	for _, name := range []string{NameTokensIssued, NameRefreshReuse, "go_goroutines", "process_resident_memory_bytes"} {
		if !have[name] {
			t.Errorf("registry lacks %s", name)
		}
	}
	if n := testutil.CollectAndCount(m.issued, NameTokensIssued); n != 3 {
		t.Errorf("%d kind series, want the 3 pre-made ones", n)
	}
}

func TestNilMetrics(t *testing.T) {
	var m *Metrics
	m.TokensIssued("web")
	m.RefreshReuse()
	fn := Instrument(m, "s", func(context.Context, int) (int, error) { return 1, nil })
	if n, err := fn(context.Background(), 0); n != 1 || err != nil {
		t.Fatalf("uninstrumented fn = %d, %v", n, err)
	}
}
