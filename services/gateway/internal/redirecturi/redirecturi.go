// Package redirecturi decides where the in-WeChat login may send a browser
// back to: URLs under one of the configured prefixes (WXLOGIN_REDIRECT_URIS),
// compared as parsed URLs (scheme, host, path segments), never as strings,
// so that neither https://good.example.evil, https://good.example@evil,
// https://good.example/app/../admin nor an encoded trick passes.
package redirecturi

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// MaxLength bounds a redirect_uri (it travels in two URLs and is stored).
const MaxLength = 2048

// prefix is one allowed prefix, normalised.
type prefix struct {
	scheme, host string
	path         string // "/" or a path; see under
}

// Allowlist is the set of allowed prefixes. The zero value allows nothing.
type Allowlist struct{ prefixes []prefix }

// Parse reads the configured prefixes: absolute http(s) URLs with a host,
// optionally a path, no user, query or fragment. Empty entries are skipped.
func Parse(entries []string) (*Allowlist, error) {
	a := &Allowlist{}
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		u, err := parse(e)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", e, err)
		}
		if u.RawQuery != "" || u.ForceQuery {
			return nil, fmt.Errorf("%q: a prefix has no query", e)
		}
		a.prefixes = append(a.prefixes, prefix{scheme: u.Scheme, host: host(u), path: u.Path})
	}
	return a, nil
}

// Len is the number of prefixes.
func (a *Allowlist) Len() int { return len(a.prefixes) }

// Strings are the prefixes as URLs, for logs.
func (a *Allowlist) Strings() []string {
	out := make([]string, len(a.prefixes))
	for i, p := range a.prefixes {
		out[i] = p.scheme + "://" + p.host + p.path
	}
	return out
}

// Check parses raw and returns it if it lies under an allowed prefix.
func (a *Allowlist) Check(raw string) (*url.URL, error) {
	if a == nil || len(a.prefixes) == 0 {
		return nil, errors.New("no redirect_uri is allowed (WXLOGIN_REDIRECT_URIS is empty)")
	}
	if len(raw) > MaxLength {
		return nil, fmt.Errorf("at most %d bytes", MaxLength)
	}
	u, err := parse(raw)
	if err != nil {
		return nil, err
	}
	h := host(u)
	for _, p := range a.prefixes {
		if u.Scheme == p.scheme && h == p.host && underPath(u.Path, p.path) {
			return u, nil
		}
	}
	return nil, errors.New("not under any prefix of WXLOGIN_REDIRECT_URIS")
}

// parse accepts an absolute http(s) URL with a host and a clean path: no
// user info, fragment, backslash, control or space characters, no "." or
// ".." segment and no encoded slash (which a server may decode and a
// browser may not, or the other way round).
func parse(raw string) (*url.URL, error) {
	for i := 0; i < len(raw); i++ {
		if c := raw[i]; c <= ' ' || c == 0x7f || c == '\\' {
			return nil, errors.New("contains a space, a control character or a backslash")
		}
	}
	if strings.Contains(raw, "#") {
		return nil, errors.New("must not have a fragment")
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return nil, errors.New("is not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, errors.New("must be an absolute http or https URL")
	case u.Opaque != "" || u.Host == "" || u.Hostname() == "":
		return nil, errors.New("must have a host")
	case u.User != nil:
		return nil, errors.New("must not have user information")
	}
	lower := strings.ToLower(u.EscapedPath())
	if strings.Contains(lower, "%2f") || strings.Contains(lower, "%5c") || strings.Contains(lower, "%2e") {
		return nil, errors.New("must not encode '/', '\\' or '.' in its path")
	}
	if u.Path == "" {
		u.Path = "/"
	}
	for _, seg := range strings.Split(u.Path, "/") {
		if seg == "." || seg == ".." {
			return nil, errors.New("must not have '.' or '..' path segments")
		}
	}
	return u, nil
}

// host is the lowercase host with the scheme's default port dropped.
func host(u *url.URL) string {
	h := strings.ToLower(u.Host)
	switch {
	case u.Scheme == "https" && strings.HasSuffix(h, ":443"):
		h = strings.TrimSuffix(h, ":443")
	case u.Scheme == "http" && strings.HasSuffix(h, ":80"):
		h = strings.TrimSuffix(h, ":80")
	}
	return h
}

// underPath reports whether path lies under prefix by whole segments:
// "/app" allows "/app" and "/app/x", not "/application"; "/app/" allows
// "/app/" and below.
func underPath(path, prefix string) bool {
	if strings.HasSuffix(prefix, "/") {
		return strings.HasPrefix(path, prefix)
	}
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}
