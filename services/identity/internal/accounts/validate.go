package accounts

import (
	"strings"
	"unicode/utf8"

	"github.com/wxlogin/wxlogin/shared/api"
)

// Limits of other text; the profile's rules are in the shared contract
// (identity.CheckProfile, identity.CheckUpdate).
const (
	maxPhone       = 64  // bytes
	maxSearchQuery = 256 // bytes
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
		unit := "characters"
		if bytes {
			unit = "bytes"
		}
		return invalid("%s is longer than %d %s", name, limit, unit)
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
