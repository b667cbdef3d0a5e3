package natsapi

import (
	"net/mail"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/identity"
)

// Limits of the user's data: generous for real WeChat data, small enough to
// keep rows small.
const (
	maxNickname    = 64   // runes
	maxURL         = 1024 // bytes
	maxShort       = 64   // runes: city, province, country (and language as WeChat sends it)
	maxLanguage    = 32   // runes, on a user's own update
	maxEmail       = 254  // bytes (RFC 5321 path limit)
	maxDescription = 500  // runes
	maxSearchQuery = 256  // bytes
)

// Account name and password rules.
const (
	minUsername = 3
	maxUsername = 32
	// Generated names of WeChat accounts start with it; people cannot take it.
	reservedPrefix = "wx_"
	minPassword    = 8
	maxPassword    = 128 // bytes
)

func invalid(format string, args ...any) error {
	return api.Errorf(api.CodeInvalidRequest, format, args...)
}

// textField checks one optional text value: at most limit runes (bytes if
// bytes), valid UTF-8 without NUL (Postgres text holds neither).
func textField(name string, v *string, limit int, bytes bool) error {
	if v == nil {
		return nil
	}
	if !utf8.ValidString(*v) || strings.ContainsRune(*v, 0) {
		return invalid("%s is not valid text", name)
	}
	n := utf8.RuneCountInString(*v)
	if bytes {
		n = len(*v)
	}
	if n > limit {
		return invalid("%s is longer than %d characters", name, limit)
	}
	return nil
}

// checkProfile checks a profile sent with a WeChat login.
func checkProfile(p *identity.Profile) error {
	if p == nil {
		return nil
	}
	if p.Gender != nil && (*p.Gender < 0 || *p.Gender > 2) {
		return invalid("gender must be 0, 1 or 2")
	}
	for _, f := range []struct {
		name  string
		value *string
		limit int
		bytes bool
	}{
		{"nickname", p.Nickname, maxNickname, false},
		{"avatar_url", p.AvatarURL, maxURL, true},
		{"language", p.Language, maxShort, false},
		{"city", p.City, maxShort, false},
		{"province", p.Province, maxShort, false},
		{"country", p.Country, maxShort, false},
	} {
		if err := textField(f.name, f.value, f.limit, f.bytes); err != nil {
			return err
		}
	}
	return nil
}

// sanitizeProfile drops the fields of a profile from WeChat that we would
// refuse from a client: WeChat's data is not worth failing a login over.
func sanitizeProfile(p *identity.Profile) *identity.Profile {
	if p == nil {
		return nil
	}
	out := *p
	for _, f := range []struct {
		field **string
		name  string
		limit int
		bytes bool
	}{
		{&out.Nickname, "nickname", maxNickname, false},
		{&out.AvatarURL, "avatar_url", maxURL, true},
		{&out.Language, "language", maxShort, false},
		{&out.City, "city", maxShort, false},
		{&out.Province, "province", maxShort, false},
		{&out.Country, "country", maxShort, false},
	} {
		if textField(f.name, *f.field, f.limit, f.bytes) != nil {
			*f.field = nil
		}
	}
	if out.Gender != nil && (*out.Gender < 0 || *out.Gender > 2) {
		out.Gender = nil
	}
	return &out
}

// checkUpdate checks every field of a user's own profile change.
func checkUpdate(req identity.UserUpdateRequest, now time.Time) error {
	p := req.Profile
	if p.Gender != nil && (*p.Gender < 0 || *p.Gender > 2) {
		return invalid("gender must be 0 (unknown), 1 (male) or 2 (female)")
	}
	for _, f := range []struct {
		name  string
		value *string
		limit int
	}{
		{"nickname", p.Nickname, maxNickname},
		{"language", p.Language, maxLanguage},
		{"city", p.City, maxShort},
		{"province", p.Province, maxShort},
		{"country", p.Country, maxShort},
		{"description", req.Description, maxDescription},
	} {
		if err := textField(f.name, f.value, f.limit, false); err != nil {
			return err
		}
	}
	if p.AvatarURL != nil && *p.AvatarURL != "" {
		if err := checkHTTPURL("avatar_url", *p.AvatarURL); err != nil {
			return err
		}
	}
	if req.Email != nil && *req.Email != "" {
		if err := checkEmail(*req.Email); err != nil {
			return err
		}
	}
	if req.DateOfBirth != nil && *req.DateOfBirth != "" {
		if err := checkDateOfBirth(*req.DateOfBirth, now); err != nil {
			return err
		}
	}
	return nil
}

func checkHTTPURL(name, v string) error {
	if len(v) > maxURL {
		return invalid("%s is longer than %d characters", name, maxURL)
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		strings.ContainsAny(v, " \t\r\n") || !utf8.ValidString(v) {
		return invalid("%s must be an http or https URL", name)
	}
	return nil
}

// checkEmail accepts a bare address (no display name, no comments) of at
// most 254 bytes with a dotted domain.
func checkEmail(v string) error {
	if len(v) > maxEmail {
		return invalid("email is longer than %d characters", maxEmail)
	}
	a, err := mail.ParseAddress(v)
	if err != nil || a.Name != "" || a.Address != v {
		return invalid("email is not a valid address")
	}
	_, domain, _ := strings.Cut(v, "@")
	if !strings.Contains(domain, ".") || strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") ||
		strings.HasPrefix(domain, "[") {
		return invalid("email is not a valid address")
	}
	return nil
}

// checkDateOfBirth accepts YYYY-MM-DD from 1900-01-01 to today where the
// day starts first (UTC+14), so nobody's birthday is "in the future".
func checkDateOfBirth(v string, now time.Time) error {
	d, err := time.Parse(time.DateOnly, v)
	if err != nil {
		return invalid("date_of_birth must be a date as YYYY-MM-DD")
	}
	today := now.UTC().Add(14 * time.Hour).Format(time.DateOnly)
	if d.Year() < 1900 || d.Format(time.DateOnly) > today {
		return invalid("date_of_birth must be between 1900-01-01 and today")
	}
	return nil
}

// normalizeUsername lowercases and checks a new account's username.
func normalizeUsername(v string) (string, error) {
	u := strings.ToLower(strings.TrimSpace(v))
	if len(u) < minUsername || len(u) > maxUsername {
		return "", invalid("username must be %d to %d characters long", minUsername, maxUsername)
	}
	for _, r := range u {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-') {
			return "", invalid("username may contain only letters a-z, digits, '_', '.' and '-'")
		}
	}
	if strings.HasPrefix(u, reservedPrefix) {
		return "", invalid("username must not start with %q (reserved for WeChat accounts)", reservedPrefix)
	}
	return u, nil
}

// loginUsername is how a username given at login is looked up.
func loginUsername(v string) string { return strings.ToLower(strings.TrimSpace(v)) }

// checkNewPassword applies the password rules of new accounts.
func checkNewPassword(p string) error {
	if len(p) < minPassword || len(p) > maxPassword {
		return invalid("password must be %d to %d bytes long", minPassword, maxPassword)
	}
	_, size := utf8.DecodeRuneInString(p)
	if strings.Count(p, p[:size])*size == len(p) {
		return invalid("password must not be one character repeated")
	}
	return nil
}
