package httpapi

import (
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/shared/api"
)

func TestParseWait(t *testing.T) {
	for _, c := range []struct {
		v    string
		want time.Duration
	}{
		{"", 0}, {"25", 25 * time.Second}, {"300ms", 300 * time.Millisecond}, {"31", maxWait}, {"1m", maxWait},
		// time.Duration(n)*time.Second overflows for these.
		{"18446744074", maxWait}, {"9223372037", maxWait},
	} {
		if got, err := parseWait(c.v); err != nil || got != c.want {
			t.Errorf("parseWait(%q) = %v, %v; want %v", c.v, got, err, c.want)
		}
	}
	for _, v := range []string{"-1", "-18446744074", "-1s", "soon"} {
		if _, err := parseWait(v); api.CodeOf(err) != api.CodeInvalidRequest {
			t.Errorf("parseWait(%q) error %v, want invalid_request", v, err)
		}
	}
}
