package natsauth_test

import (
	"strings"
	"testing"

	"github.com/wxlogin/wxlogin/shared/natsauth"
	"github.com/wxlogin/wxlogin/shared/natsconn"
)

// The shape of least privilege, whatever the lists say in detail: no user
// may subscribe beyond its own inbox and (a responder) its own subjects, no
// allow entry is a catch-all, and only the responders answer requests.
func TestPermissionsShape(t *testing.T) {
	responders := map[string]string{natsauth.Identity: "wxlogin.identity.>", natsauth.Session: "wxlogin.session.>"}
	for _, u := range natsauth.Users() {
		p := natsauth.Permissions(u)
		if p == nil || p.Publish == nil || p.Subscribe == nil || len(p.Publish.Allow) == 0 || len(p.Subscribe.Allow) == 0 {
			t.Fatalf("%s: missing allow-lists: %+v", u, p)
		}
		for _, s := range append(append([]string{}, p.Publish.Allow...), p.Subscribe.Allow...) {
			if s == ">" || s == "*" || strings.HasSuffix(s, "$JS.API.>") || s == "$KV.>" || s == "wxlogin.>" || strings.HasPrefix(s, "$SYS") {
				t.Errorf("%s: allows the catch-all %q", u, s)
			}
		}
		for _, s := range p.Subscribe.Allow {
			own := strings.HasPrefix(s, natsconn.InboxPrefix(u)+".") ||
				(responders[u] != "" && (s == responders[u] || s == "$SRV.*" || strings.HasPrefix(s, "$SRV.*."+u)))
			if !own {
				t.Errorf("%s: may subscribe to %q, which is not its own", u, s)
			}
		}
		if (p.Response != nil) != (responders[u] != "") {
			t.Errorf("%s: allow_responses %v", u, p.Response != nil)
		}
	}
	if natsauth.Permissions("admin") != nil {
		t.Error("an unknown user has permissions")
	}
}

func TestServerUsers(t *testing.T) {
	pw := natsauth.RandomPasswords()
	users, err := natsauth.ServerUsers(pw)
	if err != nil || len(users) != 4 {
		t.Fatalf("ServerUsers = %d users, %v", len(users), err)
	}
	for _, u := range users {
		if u.Password != pw[u.Username] || u.Password == "" || u.Permissions == nil {
			t.Errorf("%s: password or permissions not set", u.Username)
		}
	}
	delete(pw, natsauth.Events)
	if _, err := natsauth.ServerUsers(pw); err == nil || !strings.Contains(err.Error(), natsauth.Events) {
		t.Errorf("ServerUsers without events' password = %v, want an error naming events", err)
	}
	pw[natsauth.Events] = ""
	if _, err := natsauth.ServerUsers(pw); err == nil {
		t.Error("an empty password is accepted")
	}
}
