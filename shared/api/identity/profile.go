package identity

import (
	"fmt"
	"net/mail"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/wxlogin/wxlogin/shared/api"
)

// The rules of a user's profile, one set for the gateway (a 400 at the
// edge) and identity (the authority, which checks again). Limits are
// generous for real WeChat data, small enough to keep rows small.
const (
	MaxNicknameRunes    = 64
	MaxAvatarURLBytes   = 1024
	MaxLanguageRunes    = 32  // WeChat sends "zh_CN", "en"
	MaxPlaceRunes       = 64  // city, province, country
	MaxEmailBytes       = 254 // RFC 5321's path limit
	MaxDescriptionRunes = 500
)

func invalidField(field, format string, args ...any) *api.Error {
	return api.Errorf(api.CodeInvalidRequest, "%s: %s", field, fmt.Sprintf(format, args...))
}

// CheckText checks a one-line free-text value: valid UTF-8, at most
// maxRunes characters, no control characters (NUL included, which Postgres
// text cannot hold).
func CheckText(field, v string, maxRunes int) error {
	return checkText(field, v, maxRunes, unicode.IsControl, "must not contain control characters")
}

// CheckDescription checks the description: free text like CheckText, but
// it may hold line breaks and tabs.
func CheckDescription(v string) error {
	return checkText("description", v, MaxDescriptionRunes,
		func(r rune) bool { return unicode.IsControl(r) && r != '\n' && r != '\r' && r != '\t' },
		"must not contain control characters other than line breaks and tabs")
}

func checkText(field, v string, maxRunes int, refused func(rune) bool, why string) error {
	switch {
	case !utf8.ValidString(v):
		return invalidField(field, "must be valid UTF-8")
	case utf8.RuneCountInString(v) > maxRunes:
		return invalidField(field, "must be at most %d characters", maxRunes)
	case strings.ContainsFunc(v, refused):
		return invalidField(field, "%s", why)
	}
	return nil
}

// CheckAvatarURL checks an absolute http(s) URL of at most
// MaxAvatarURLBytes, without credentials or whitespace; "" (none) passes.
func CheckAvatarURL(field, v string) error {
	if v == "" {
		return nil
	}
	if len(v) > MaxAvatarURLBytes {
		return invalidField(field, "must be at most %d bytes", MaxAvatarURLBytes)
	}
	u, err := url.Parse(v)
	if err != nil || !utf8.ValidString(v) || strings.ContainsFunc(v, unicode.IsSpace) ||
		(u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return invalidField(field, "must be an absolute http or https URL")
	}
	return nil
}

// CheckGender checks a gender: 0 unknown, 1 male, 2 female.
func CheckGender(field string, g int) error {
	if g < 0 || g > 2 {
		return invalidField(field, "must be 0 (unknown), 1 (male) or 2 (female)")
	}
	return nil
}

// CheckEmail accepts a bare address (no display name, no comments, no IP
// literal) with a dotted domain; "" (none) passes.
func CheckEmail(v string) error {
	if v == "" {
		return nil
	}
	if len(v) > MaxEmailBytes {
		return invalidField("email", "must be at most %d bytes", MaxEmailBytes)
	}
	a, err := mail.ParseAddress(v)
	_, domain, _ := strings.Cut(v, "@")
	if err != nil || a.Name != "" || a.Address != v ||
		!strings.Contains(domain, ".") || strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") ||
		strings.HasPrefix(domain, "[") {
		return invalidField("email", "must be an email address such as name@example.com")
	}
	return nil
}

// CheckDateOfBirth accepts YYYY-MM-DD from 1900-01-01 to today; "" (none)
// passes. "Today" is the date in the furthest time zone ahead (UTC+14), so
// a birthday entered just after midnight anywhere is not in the future.
func CheckDateOfBirth(v string, now time.Time) error {
	if v == "" {
		return nil
	}
	d, err := time.Parse(time.DateOnly, v)
	if err != nil {
		return invalidField("date_of_birth", "must be a date as YYYY-MM-DD")
	}
	if d.Format(time.DateOnly) > now.UTC().Add(14*time.Hour).Format(time.DateOnly) {
		return invalidField("date_of_birth", "must not be in the future")
	}
	if d.Year() < 1900 {
		return invalidField("date_of_birth", "must be 1900-01-01 or later")
	}
	return nil
}

// CheckProfile checks every field of a profile (nil passes), naming them
// as Profile's JSON does.
func CheckProfile(p *Profile) error { return CheckProfileAs(p, nil) }

// CheckProfileAs is CheckProfile with the fields named by name (given the
// JSON name, such as "avatar_url"), for a client that sent them under other
// names; nil names them as JSON does.
func CheckProfileAs(p *Profile, name func(field string) string) error {
	if p == nil {
		return nil
	}
	if name == nil {
		name = func(f string) string { return f }
	}
	for _, f := range p.textFields() {
		if v := *f.field; v != nil {
			if err := f.check(name(f.name), *v); err != nil {
				return err
			}
		}
	}
	if p.Gender != nil {
		return CheckGender(name("gender"), *p.Gender)
	}
	return nil
}

// SanitizeProfile returns a copy of p (nil for nil) without the fields
// CheckProfile would refuse: a profile from WeChat's servers is not worth
// failing a login over.
func SanitizeProfile(p *Profile) *Profile {
	if p == nil {
		return nil
	}
	out := *p
	for _, f := range out.textFields() {
		if *f.field != nil && f.check(f.name, **f.field) != nil {
			*f.field = nil
		}
	}
	if out.Gender != nil && CheckGender("gender", *out.Gender) != nil {
		out.Gender = nil
	}
	return &out
}

// CheckUpdate checks every field of a user's own profile change.
func CheckUpdate(req UserUpdateRequest, now time.Time) error {
	if err := CheckProfile(&req.Profile); err != nil {
		return err
	}
	if req.Email != nil {
		if err := CheckEmail(*req.Email); err != nil {
			return err
		}
	}
	if req.DateOfBirth != nil {
		if err := CheckDateOfBirth(*req.DateOfBirth, now); err != nil {
			return err
		}
	}
	if req.Description != nil {
		return CheckDescription(*req.Description)
	}
	return nil
}

type profileField struct {
	name  string
	field **string
	check func(name, v string) error
}

// textFields are p's text fields with their rules.
func (p *Profile) textFields() []profileField {
	text := func(maxRunes int) func(string, string) error {
		return func(name, v string) error { return CheckText(name, v, maxRunes) }
	}
	return []profileField{
		{"nickname", &p.Nickname, text(MaxNicknameRunes)},
		{"avatar_url", &p.AvatarURL, CheckAvatarURL},
		{"language", &p.Language, text(MaxLanguageRunes)},
		{"city", &p.City, text(MaxPlaceRunes)},
		{"province", &p.Province, text(MaxPlaceRunes)},
		{"country", &p.Country, text(MaxPlaceRunes)},
	}
}
