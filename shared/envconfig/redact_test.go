package envconfig

import (
	"strings"
	"testing"
)

// The cases of the three services' own redaction tests (session, identity,
// gateway), and those they missed.
func TestRedactURLs(t *testing.T) {
	tests := []struct {
		name, in, want string
		secrets        []string // none may show
	}{
		{"empty", "", "", nil},
		{"blank", "  ", "", nil},
		{"no credentials", "nats://nats6:4222", "nats://nats6:4222", nil},
		{"list without credentials", "nats://n1:4222, nats://n2:4222", "nats://n1:4222,nats://n2:4222", nil},
		{"user and password", "nats://alice:pa55word@nats1:4222", "nats://redacted@nats1:4222", []string{"alice", "pa55word"}},
		{"token as user", "nats://s3cr3t-token@nats1:4222", "nats://redacted@nats1:4222", []string{"s3cr3t-token"}},
		{"list, one with credentials", "nats://nats1:4222, tls://bob:hunter2@nats2:4222",
			"nats://nats1:4222,tls://redacted@nats2:4222", []string{"bob", "hunter2"}},
		{"list, several with credentials", "nats://a:b-pass@n1:4222, tls://tok-en@n2:4222,nats://n3:4222",
			"nats://redacted@n1:4222,tls://redacted@n2:4222,nats://n3:4222", []string{"b-pass", "tok-en"}},
		{"no scheme", "carol:letmein@nats3:4222", "redacted@nats3:4222", []string{"carol", "letmein"}},
		{"list without schemes", "t1@a:4222,t2@b:4222", "redacted@a:4222,redacted@b:4222", []string{"t1", "t2"}},
		{"does not parse: bad escape and '/', '#' in the password", "nats://dave:50%zz/x#@nats4:4222",
			"nats://redacted@nats4:4222", []string{"dave", "50%zz"}},
		{"does not parse: space in the user", "nats://bad user:p%zz-secret@c.example:4222",
			"nats://redacted@c.example:4222", []string{"bad user", "p%zz-secret"}},
		{"does not parse: space and bad escape, no port", "nats://us er:p%zz@n1", "nats://redacted@n1", []string{"us er", "p%zz"}},
		{"password with ://", "erin:a://b@nats5:4222", "redacted@nats5:4222", []string{"erin", "a://b"}},
		{"password with @", "nats://u:p@ss@n1:4222", "nats://redacted@n1:4222", []string{"p@ss"}},
		{"password with a comma", "postgres://app:pa,ss@db:5432/wxlogin", "postgres://redacted@db:5432/wxlogin", []string{"app", "pa", "ss@"}},
		{"password with commas, no scheme", "u:x1,x2,x3@host", "redacted@host", []string{"x1", "x2", "x3"}},
		// A piece with an '@' and no scheme might end the password of the
		// URL before it: the host goes with it rather than a risk taken.
		{"mixed list hides more", "nats://a:4222,tok@b:4222", "nats://redacted@b:4222", []string{"tok"}},
		{"database URL", "postgres://app:db-password@db:5432/wxlogin?sslmode=disable",
			"postgres://redacted@db:5432/wxlogin?sslmode=disable", []string{"app", "db-password"}},
		{"database URL without password", "postgres://postgres@127.0.0.1:5432/wxlogin?sslmode=disable",
			"postgres://redacted@127.0.0.1:5432/wxlogin?sslmode=disable", nil},
		{"password in the query", "postgres://db/wxlogin?sslmode=disable&password=q-secret&sslpassword=k-secret#f",
			"postgres://db/wxlogin?sslmode=disable&password=***&sslpassword=***#f", []string{"q-secret", "k-secret"}},
		{"DSN", "host=db user=app password=dsn-secret dbname=wxlogin", "host=db user=app password=*** dbname=wxlogin", []string{"dsn-secret"}},
		{"DSN, quoted password with spaces", `host=db password = 'a b\' c' dbname=x`, "host=db password = *** dbname=x", []string{"a b", "c'"}},
		{"DSN, password with comma and @", "host=db password=p,q@r port=5432", "host=db password=*** port=5432", []string{"p,q", "q@r"}},
		{"DSN, escaped space in the password", `password=a\ b host=db`, "password=*** host=db", []string{`a\ b`}},
		{"DSN without password", "host=db dbname=wxlogin sslmode=disable", "host=db dbname=wxlogin sslmode=disable", nil},
		{"DSN, unterminated quote", "host=db password='oops dbname=x", "***", []string{"oops"}},
		{"DSN, trailing backslash", `host=db password=x\`, "***", nil},
		{"DSN, no value for a key", "host=db password", "***", nil},
		{"DSN with an @ elsewhere", "host=db user=app@corp password=p", "***", []string{"app@corp"}},
		{"token with = and no scheme", "abc==@host:4222", "***", []string{"abc=="}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := RedactURLs(tc.in)
			if got != tc.want {
				t.Errorf("RedactURLs(%q) = %q, want %q", tc.in, got, tc.want)
			}
			for _, s := range tc.secrets {
				if strings.Contains(got, s) {
					t.Errorf("RedactURLs(%q) = %q shows %q", tc.in, got, s)
				}
			}
		})
	}
}

// Whatever the input, RedactURLs returns, and every '@' left in its output
// ends a placeholder: nothing written as userinfo survives.
func FuzzRedactURLs(f *testing.F) {
	for _, s := range []string{
		"nats://u:p@h:4222", "nats://a:4222,tok@b:4222", "u:p,q@h", "host=db password='x\\' y'",
		"postgres://h/db?password=x#y", "a=b\\", "password='", "nats://@", "@,@", "x://y://z@w", "=@",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := RedactURLs(in)
		rest := out
		for {
			at := strings.IndexByte(rest, '@')
			if at < 0 {
				break
			}
			if !strings.HasSuffix(rest[:at], redactedUser) {
				t.Fatalf("RedactURLs(%q) = %q: an '@' after something other than %q", in, out, redactedUser)
			}
			rest = rest[at+1:]
		}
	})
}
