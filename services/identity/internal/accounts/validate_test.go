package accounts

import (
	"strings"
	"testing"

	"github.com/wxlogin/wxlogin/shared/api"
)

func TestNormalizeUsername(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"alice", "alice"},
		{"  Alice.Smith-1_x ", "alice.smith-1_x"},
		{"abc", "abc"},
		{strings.Repeat("a", 32), strings.Repeat("a", 32)},
		{"ab", ""},
		{strings.Repeat("a", 33), ""},
		{"wx_abcdef", ""},
		{"Wx_abcdef", ""},
		{"wx-abcdef", "wx-abcdef"},
		{"a b c", ""},
		{"ali@ce", ""},
		{"ålice", ""},
		{"", ""},
	} {
		got, err := normalizeUsername(tc.in)
		if got != tc.want || (tc.want == "") != (err != nil) {
			t.Errorf("normalizeUsername(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
		if err != nil && api.CodeOf(err) != api.CodeInvalidRequest {
			t.Errorf("code %s", api.CodeOf(err))
		}
	}
}

func TestCheckNewPassword(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"12345678", true},
		{"1234567", false},
		{strings.Repeat("ab", 64), true},
		{strings.Repeat("ab", 64) + "c", false},
		{"aaaaaaaa", false},
		{"密密密密密密密密", false}, // one (multi-byte) character repeated
		{"密码密码密码密码", true},
		{"aaaaaaab", true},
	} {
		if err := checkNewPassword(tc.in); (err == nil) != tc.ok {
			t.Errorf("checkNewPassword(%q) = %v, want ok %v", tc.in, err, tc.ok)
		}
	}
}
