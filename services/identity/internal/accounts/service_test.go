package accounts

import (
	"context"
	"fmt"
	"net"
	"testing"

	"github.com/lib/pq"
)

func TestStorageUnavailable(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("begin: %w", &net.OpError{Op: "dial", Err: fmt.Errorf("connection refused")}), true},
		{fmt.Errorf("q: %w", context.DeadlineExceeded), true},
		{&pq.Error{Code: "57P01"}, true},
		{&pq.Error{Code: "08006"}, true},
		{&pq.Error{Code: "23505"}, false},
		{fmt.Errorf("something else"), false},
	} {
		if got := storageUnavailable(tc.err); got != tc.want {
			t.Errorf("storageUnavailable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
