package envconfig

import (
	"net/url"
	"slices"
	"strings"
)

// Placeholders that RedactURLs writes in place of a secret.
const (
	redactedUser  = "redacted" // the userinfo of a URL: "nats://redacted@host:4222"
	redactedValue = "***"      // a password= value, or a whole DSN that does not scan
)

// RedactURLs returns urls, a URL or a comma-separated list of them (NATS
// servers, a database URL) or a key=value DSN, fit for a log: the whole
// userinfo of each URL is replaced by "redacted" — the password and the
// user too, since NATS takes a token written as the user — and the value
// of every password= parameter by "***". Scheme, host, port and path stay.
//
// It does not depend on the URLs parsing: credentials are whatever comes
// before the last '@', so a password holding '/', '#', "://" or ',' is
// hidden all the same. When in doubt it hides more (a host, a whole DSN)
// rather than less.
func RedactURLs(urls string) string {
	s := strings.TrimSpace(urls)
	if isDSN(s) {
		return redactDSN(s)
	}
	groups := splitURLs(s)
	for i, g := range groups {
		groups[i] = redactURL(g)
	}
	return strings.Join(groups, ",")
}

// splitURLs splits a comma-separated list of URLs. A ',' is legal in a
// URL's userinfo, so a piece with an '@' but no scheme ("q@host" of
// "nats://u:p,q@host") is joined back to the pieces before it without an
// '@', up to the one that starts a URL: it may be the rest of their
// password. At worst that hides a host along with the credentials.
func splitURLs(s string) []string {
	var groups []string
	for p := range strings.SplitSeq(s, ",") {
		p = strings.TrimSpace(p)
		if strings.Contains(p, "@") && !hasScheme(p) {
			start := len(groups)
			for start > 0 && !strings.Contains(groups[start-1], "@") {
				start--
				if hasScheme(groups[start]) {
					break
				}
			}
			p = strings.Join(append(groups[start:len(groups):len(groups)], p), ",")
			groups = groups[:start]
		}
		groups = append(groups, p)
	}
	return groups
}

// redactURL redacts one URL: its userinfo, and password= in its query.
func redactURL(u string) string {
	scheme, rest := "", u
	if before, after, ok := strings.Cut(u, "://"); ok && validScheme(before) {
		scheme, rest = before+"://", after
	}
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		rest = redactedUser + "@" + rest[at+1:]
	}
	// lib/pq also takes a password from the query: postgres://h/db?password=x.
	if q := strings.IndexByte(rest, '?'); q >= 0 {
		query, fragment, hasFragment := strings.Cut(rest[q+1:], "#")
		params := strings.Split(query, "&")
		for i, p := range params {
			if k, _, ok := strings.Cut(p, "="); ok && isPasswordKey(k) {
				params[i] = k + "=" + redactedValue
			}
		}
		rest = rest[:q+1] + strings.Join(params, "&")
		if hasFragment {
			rest += "#" + fragment
		}
	}
	return scheme + rest
}

func hasScheme(u string) bool {
	before, _, ok := strings.Cut(u, "://")
	return ok && validScheme(before)
}

// validScheme reports whether s is a URL scheme (RFC 3986), so that a
// password containing "://" is not taken for one.
func validScheme(s string) bool {
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case i > 0 && (r >= '0' && r <= '9' || r == '+' || r == '-' || r == '.'):
		default:
			return false
		}
	}
	return s != ""
}

// isPasswordKey reports whether a DSN or query key names a password
// (password, sslpassword, in any case).
func isPasswordKey(k string) bool {
	return strings.Contains(strings.ToLower(k), "password")
}

// isDSN reports whether s is a key=value connection string
// ("host=db user=app password=x"), not a URL: it starts with "key=".
func isDSN(s string) bool {
	eq := strings.IndexByte(s, '=')
	if eq <= 0 {
		return false
	}
	key := strings.TrimRight(s[:eq], " \t")
	for i, r := range key {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return key != ""
}

// redactDSN replaces the password values of a key=value DSN (libpq syntax:
// values unquoted, or single-quoted with backslash escapes) by "***". A
// DSN that does not scan, or that still holds an '@' (a token written as a
// URL's user, "abc=@host", is no DSN), is hidden whole.
func redactDSN(s string) string {
	var out strings.Builder
	i := 0
	skipSpace := func() {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
			i++
		}
	}
	for {
		start := i
		skipSpace()
		out.WriteString(s[start:i])
		if i == len(s) {
			break
		}
		keyStart := i
		for i < len(s) && s[i] != '=' && s[i] != ' ' && s[i] != '\t' {
			i++
		}
		key := s[keyStart:i]
		skipSpace()
		if key == "" || i == len(s) || s[i] != '=' {
			return redactedValue
		}
		i++
		skipSpace()
		out.WriteString(s[keyStart:i])
		valStart := i
		if i < len(s) && s[i] == '\'' {
			for i++; i < len(s) && s[i] != '\''; i++ {
				if s[i] == '\\' {
					i++
				}
			}
			if i >= len(s) {
				return redactedValue // unterminated quote
			}
			i++
		} else {
			for ; i < len(s) && s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r'; i++ {
				if s[i] == '\\' {
					i++
				}
			}
			if i > len(s) {
				return redactedValue // a trailing backslash
			}
		}
		if isPasswordKey(key) {
			out.WriteString(redactedValue)
		} else {
			out.WriteString(s[valStart:i])
		}
	}
	if strings.Contains(out.String(), "@") {
		return redactedValue
	}
	return out.String()
}

// RedactError returns err with every credential of urls (as RedactURLs
// finds them) and each of secrets cut out of its message; errors.Is and
// errors.As still see what it wraps. Parse errors repeat the whole URL or
// DSN they failed on (net/url, lib/pq), password and all.
func RedactError(err error, urls string, secrets ...string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if s := strings.TrimSpace(urls); s != "" {
		msg = strings.ReplaceAll(msg, s, RedactURLs(s))
	}
	for _, s := range append(credentials(urls), secrets...) {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, redactedValue)
		}
	}
	return &redactedError{msg: msg, err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// credentials are the secrets urls hold: each URL's userinfo (raw and
// escaped) and its password, and every password= value (of a DSN, or of a
// URL's query), longest first so that a part never hides the whole.
func credentials(urls string) []string {
	var out []string
	s := strings.TrimSpace(urls)
	if !isDSN(s) {
		for _, u := range splitURLs(s) {
			rest := u
			if before, after, ok := strings.Cut(u, "://"); ok && validScheme(before) {
				rest = after
			}
			if at := strings.LastIndex(rest, "@"); at >= 0 {
				info := rest[:at]
				out = append(out, info, url.PathEscape(info))
				if _, pass, ok := strings.Cut(info, ":"); ok {
					out = append(out, pass)
				}
			}
		}
	}
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '&' || r == '?' || r == '\t' }) {
		if k, v, ok := strings.Cut(f, "="); ok && isPasswordKey(k) {
			out = append(out, strings.Trim(v, "'"))
		}
	}
	slices.SortFunc(out, func(a, b string) int { return len(b) - len(a) })
	return out
}
