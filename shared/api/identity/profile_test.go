package identity

import (
	"strings"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/shared/api"
)

func ptr[T any](v T) *T { return &v }

func TestCheckUpdate(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	prof := func(p Profile) UserUpdateRequest { return UserUpdateRequest{Profile: p} }
	for _, tc := range []struct {
		name string
		req  UserUpdateRequest
		want string // "" when accepted, else a part of the message
	}{
		{"empty", UserUpdateRequest{}, ""},
		{"full", UserUpdateRequest{Profile: Profile{Nickname: ptr("微信用户"), AvatarURL: ptr("https://a/b.png"), Gender: ptr(2),
			Language: ptr("zh_CN"), City: ptr("Shenzhen"), Province: ptr("Guangdong"), Country: ptr("China")},
			Email: ptr("a.b+tag@mail.example.cn"), DateOfBirth: ptr("1990-05-17"), Description: ptr("line one\r\n\tline two")}, ""},
		{"empty values clear", UserUpdateRequest{Profile: Profile{Nickname: ptr(""), AvatarURL: ptr("")},
			Email: ptr(""), DateOfBirth: ptr(""), Description: ptr("")}, ""},
		{"emoji nickname", prof(Profile{Nickname: ptr("🐼 Panda")}), ""},

		{"nickname at the limit", prof(Profile{Nickname: ptr(strings.Repeat("微", MaxNicknameRunes))}), ""},
		{"nickname too long", prof(Profile{Nickname: ptr(strings.Repeat("微", MaxNicknameRunes+1))}), "nickname: must be at most 64 characters"},
		{"nickname with a newline", prof(Profile{Nickname: ptr("a\nb")}), "nickname: must not contain control characters"},
		{"nickname with a C1 control", prof(Profile{Nickname: ptr("a\u0085b")}), "nickname: must not contain control"},
		{"language at the limit", prof(Profile{Language: ptr(strings.Repeat("l", MaxLanguageRunes))}), ""},
		{"language too long", prof(Profile{Language: ptr(strings.Repeat("l", MaxLanguageRunes+1))}), "language: must be at most 32"},
		{"city at the limit", prof(Profile{City: ptr(strings.Repeat("城", MaxPlaceRunes))}), ""},
		{"province too long", prof(Profile{Province: ptr(strings.Repeat("省", MaxPlaceRunes+1))}), "province: must be at most 64"},
		{"city with a bell", prof(Profile{City: ptr("a\u0007b")}), "city: must not contain control"},
		{"invalid utf-8", prof(Profile{City: ptr("\xff")}), "city: must be valid UTF-8"},
		{"nul", prof(Profile{Country: ptr("a\x00b")}), "country: must not contain control"},

		{"avatar in capitals", prof(Profile{AvatarURL: ptr("HTTPS://a.example/x")}), ""},
		{"avatar at the limit", prof(Profile{AvatarURL: ptr("https://a/" + strings.Repeat("x", MaxAvatarURLBytes-10))}), ""},
		{"avatar too long", prof(Profile{AvatarURL: ptr("https://a/" + strings.Repeat("x", MaxAvatarURLBytes-9))}), "avatar_url: must be at most 1024 bytes"},
		{"avatar ftp", prof(Profile{AvatarURL: ptr("ftp://a.example/x")}), "avatar_url: must be an absolute http or https URL"},
		{"avatar relative", prof(Profile{AvatarURL: ptr("/a.png")}), "avatar_url"},
		{"avatar without host", prof(Profile{AvatarURL: ptr("https:///x")}), "avatar_url"},
		{"avatar with user info", prof(Profile{AvatarURL: ptr("https://u:p@example.com/a.png")}), "avatar_url"},
		{"avatar with a space", prof(Profile{AvatarURL: ptr("https://a.example/a b.png")}), "avatar_url"},

		{"gender 0", prof(Profile{Gender: ptr(0)}), ""},
		{"gender -1", prof(Profile{Gender: ptr(-1)}), "gender: must be 0 (unknown), 1 (male) or 2 (female)"},
		{"gender 3", prof(Profile{Gender: ptr(3)}), "gender"},

		{"email ip literal", UserUpdateRequest{Email: ptr("a@[127.0.0.1]")}, "email: must be an email address"},
		{"email trailing dot", UserUpdateRequest{Email: ptr("a@example.com.")}, "email"},
		{"email leading dot", UserUpdateRequest{Email: ptr("a@.example.com")}, "email"},
		{"email two @", UserUpdateRequest{Email: ptr("a@b@example.com")}, "email"},
		{"email with spaces", UserUpdateRequest{Email: ptr(" a@example.com")}, "email"},
		{"email with a name", UserUpdateRequest{Email: ptr("Ann <ann@example.com>")}, "email"},
		{"email without a dot", UserUpdateRequest{Email: ptr("ann@localhost")}, "email"},
		{"email without @", UserUpdateRequest{Email: ptr("ann.example.com")}, "email"},
		{"email too long", UserUpdateRequest{Email: ptr(strings.Repeat("a", 64) + "@" + strings.Repeat("b", 186) + ".com")}, "email: must be at most 254 bytes"},

		{"date today", UserUpdateRequest{DateOfBirth: ptr("2026-03-10")}, ""},
		{"date tomorrow in UTC+14", UserUpdateRequest{DateOfBirth: ptr("2026-03-11")}, ""},
		{"date in two days", UserUpdateRequest{DateOfBirth: ptr("2026-03-12")}, "date_of_birth: must not be in the future"},
		{"date 1900", UserUpdateRequest{DateOfBirth: ptr("1900-01-01")}, ""},
		{"date too old", UserUpdateRequest{DateOfBirth: ptr("1899-12-31")}, "date_of_birth: must be 1900-01-01 or later"},
		{"date in another format", UserUpdateRequest{DateOfBirth: ptr("17/05/1990")}, "date_of_birth: must be a date as YYYY-MM-DD"},
		{"impossible date", UserUpdateRequest{DateOfBirth: ptr("1990-02-30")}, "date_of_birth: must be a date"},

		{"description at the limit", UserUpdateRequest{Description: ptr(strings.Repeat("字", MaxDescriptionRunes))}, ""},
		{"description too long", UserUpdateRequest{Description: ptr(strings.Repeat("d", MaxDescriptionRunes+1))}, "description: must be at most 500"},
		{"description with a bell", UserUpdateRequest{Description: ptr("a\u0007")}, "description: must not contain control characters other than"},
		{"description with a NUL", UserUpdateRequest{Description: ptr("a\x00")}, "description"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckUpdate(tc.req, now)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if err := CheckProfile(&tc.req.Profile); err != nil {
					t.Fatalf("CheckProfile refused: %v", err)
				}
				return
			}
			e, ok := err.(*api.Error)
			if !ok || e.Code != api.CodeInvalidRequest || !strings.Contains(e.Message, tc.want) {
				t.Fatalf("err = %v, want invalid_request mentioning %q", err, tc.want)
			}
			// A login's profile obeys the same rules.
			if tc.req.Profile != (Profile{}) {
				if perr := CheckProfile(&tc.req.Profile); perr == nil || perr.Error() != err.Error() {
					t.Errorf("CheckProfile = %v, CheckUpdate = %v", perr, err)
				}
			}
		})
	}
}

func TestCheckProfileAs(t *testing.T) {
	if err := CheckProfile(nil); err != nil {
		t.Fatalf("nil profile: %v", err)
	}
	names := map[string]string{"nickname": "user_info.nickName", "gender": "user_info.gender"}
	err := CheckProfileAs(&Profile{Nickname: ptr("a\tb")}, func(f string) string { return names[f] })
	if err == nil || err.(*api.Error).Message != "user_info.nickName: must not contain control characters" {
		t.Errorf("err = %v", err)
	}
	err = CheckProfileAs(&Profile{Gender: ptr(7)}, func(f string) string { return names[f] })
	if err == nil || !strings.HasPrefix(err.(*api.Error).Message, "user_info.gender: ") {
		t.Errorf("err = %v", err)
	}
}

func TestSanitizeProfile(t *testing.T) {
	in := &Profile{Nickname: ptr(strings.Repeat("长", 65)), City: ptr("Shenzhen"), Province: ptr("a\u0007b"),
		Country: ptr("a\x00b"), Gender: ptr(9), AvatarURL: ptr("https://a/b.png"), Language: ptr("zh_CN")}
	p := SanitizeProfile(in)
	if p.Nickname != nil || p.Country != nil || p.Province != nil || p.Gender != nil ||
		p.City == nil || *p.City != "Shenzhen" || p.AvatarURL == nil || p.Language == nil {
		t.Errorf("sanitized = %+v", p)
	}
	if in.Nickname == nil || in.Gender == nil {
		t.Error("the input was changed")
	}
	if err := CheckProfile(p); err != nil {
		t.Errorf("a sanitized profile is refused: %v", err)
	}
	if p := SanitizeProfile(&Profile{AvatarURL: ptr("javascript:alert(1)")}); p.AvatarURL != nil {
		t.Errorf("avatar %q kept", *p.AvatarURL)
	}
	if SanitizeProfile(nil) != nil {
		t.Error("nil profile")
	}
}
