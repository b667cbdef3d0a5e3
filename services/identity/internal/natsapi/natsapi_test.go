package natsapi

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/lib/pq"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/identity"
)

func ptr[T any](v T) *T { return &v }

func TestCheckProfile(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    *identity.Profile
		ok   bool
	}{
		{"nil", nil, true},
		{"empty", &identity.Profile{}, true},
		{"full", &identity.Profile{Nickname: ptr("微信用户"), AvatarURL: ptr("https://a/b.png"), Gender: ptr(2),
			Language: ptr("zh_CN"), City: ptr("Shenzhen"), Province: ptr("Guangdong"), Country: ptr("China")}, true},
		{"nickname at the limit", &identity.Profile{Nickname: ptr(strings.Repeat("微", maxNickname))}, true},
		{"nickname too long", &identity.Profile{Nickname: ptr(strings.Repeat("微", maxNickname+1))}, false},
		{"url too long", &identity.Profile{AvatarURL: ptr("https://" + strings.Repeat("a", maxURL))}, false},
		{"gender -1", &identity.Profile{Gender: ptr(-1)}, false},
		{"gender 3", &identity.Profile{Gender: ptr(3)}, false},
		{"invalid utf-8", &identity.Profile{City: ptr("\xff")}, false},
		{"nul", &identity.Profile{Country: ptr("a\x00b")}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkProfile(tc.p)
			if tc.ok != (err == nil) {
				t.Fatalf("err = %v, want ok %v", err, tc.ok)
			}
			if err != nil && api.CodeOf(err) != api.CodeInvalidRequest {
				t.Errorf("code = %s", api.CodeOf(err))
			}
		})
	}
}

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
