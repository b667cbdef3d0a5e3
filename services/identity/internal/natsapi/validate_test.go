package natsapi

import (
	"strings"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/identity"
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

func TestCheckUpdateFields(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		req  identity.UserUpdateRequest
		ok   bool
	}{
		{"email", identity.UserUpdateRequest{Email: ptr("a.b+tag@mail.example.cn")}, true},
		{"email ip literal", identity.UserUpdateRequest{Email: ptr("a@[127.0.0.1]")}, false},
		{"email trailing dot", identity.UserUpdateRequest{Email: ptr("a@example.com.")}, false},
		{"email two @", identity.UserUpdateRequest{Email: ptr("a@b@example.com")}, false},
		{"email with spaces", identity.UserUpdateRequest{Email: ptr(" a@example.com")}, false},
		{"date tomorrow in UTC+8", identity.UserUpdateRequest{DateOfBirth: ptr("2025-06-02")}, true},
		{"date in two days", identity.UserUpdateRequest{DateOfBirth: ptr("2025-06-03")}, false},
		{"avatar with user info", identity.UserUpdateRequest{Profile: identity.Profile{AvatarURL: ptr("https://u:p@example.com/a.png")}}, false},
		{"avatar relative", identity.UserUpdateRequest{Profile: identity.Profile{AvatarURL: ptr("/a.png")}}, false},
		{"invalid utf-8", identity.UserUpdateRequest{Profile: identity.Profile{City: ptr("\xff")}}, false},
		{"empty", identity.UserUpdateRequest{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := checkUpdate(tc.req, now); (err == nil) != tc.ok {
				t.Errorf("checkUpdate = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

func TestSanitizeProfile(t *testing.T) {
	p := sanitizeProfile(&identity.Profile{Nickname: ptr(strings.Repeat("长", 65)), City: ptr("Shenzhen"),
		Country: ptr("a\x00b"), Gender: ptr(9), AvatarURL: ptr("https://a/b.png")})
	if p.Nickname != nil || p.Country != nil || p.Gender != nil || p.City == nil || *p.City != "Shenzhen" || p.AvatarURL == nil {
		t.Errorf("sanitized = %+v", p)
	}
	if sanitizeProfile(nil) != nil {
		t.Error("nil profile")
	}
}
