package deploy

import (
	"flag"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wxlogin/wxlogin/shared/freeaddr"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/wxlogin/wxlogin/shared/natsauth"
)

// natsConfMount is how every NATS container gets its config: all of
// deploy/nats, so nats.conf and the cluster configs find auth.conf.
const natsConfMount = "./deploy/nats:/etc/nats:ro"

// setNATSPasswords sets the four password variables auth.conf reads, for
// the rest of the test, and returns them by user.
func setNATSPasswords(t *testing.T) map[string]string {
	t.Helper()
	passwords := map[string]string{}
	for _, u := range natsauth.Users() {
		passwords[u] = "test" + u + "password"
		t.Setenv(natsauth.PasswordVar(u), passwords[u])
	}
	return passwords
}

// checkUsers requires opts (a parsed config) to have exactly shared/natsauth's
// users, permissions and the passwords of the environment, and no way in
// without one of them.
func checkUsers(t *testing.T, opts *server.Options) {
	t.Helper()
	if opts.NoAuthUser != "" || opts.Username != "" || opts.Authorization != "" || len(opts.Nkeys) != 0 || len(opts.Accounts) != 0 {
		t.Errorf("config has other ways in: no_auth_user %q, user %q, token set %v, %d nkeys, %d accounts",
			opts.NoAuthUser, opts.Username, opts.Authorization != "", len(opts.Nkeys), len(opts.Accounts))
	}
	var names []string
	for _, u := range opts.Users {
		names = append(names, u.Username)
		want := natsauth.Permissions(u.Username)
		if want == nil {
			t.Errorf("user %s is not one of shared/natsauth's", u.Username)
			continue
		}
		if pw := os.Getenv(natsauth.PasswordVar(u.Username)); u.Password != pw {
			t.Errorf("user %s: password is not $%s", u.Username, natsauth.PasswordVar(u.Username))
		}
		checkPermissions(t, u.Username, u.Permissions, want)
	}
	if want := natsauth.Users(); !slices.Equal(names, want) {
		t.Errorf("users %v, want %v", names, want)
	}
}

func checkPermissions(t *testing.T, user string, got, want *server.Permissions) {
	t.Helper()
	if got == nil {
		t.Errorf("user %s has no permissions: it may do anything", user)
		return
	}
	same := func(what string, g, w *server.SubjectPermission) {
		norm := func(p *server.SubjectPermission) (allow, deny []string) {
			if p == nil {
				return nil, nil
			}
			allow, deny = slices.Clone(p.Allow), slices.Clone(p.Deny)
			slices.Sort(allow)
			slices.Sort(deny)
			return allow, deny
		}
		ga, gd := norm(g)
		wa, wd := norm(w)
		for _, l := range []struct {
			kind string
			g, w []string
		}{{"allow", ga, wa}, {"deny", gd, wd}} {
			if !slices.Equal(l.g, l.w) {
				t.Errorf("user %s %s %s differs from shared/natsauth (a subject listed twice if both are empty):\n conf only: %v\n Go only:   %v",
					user, what, l.kind, minus(l.g, l.w), minus(l.w, l.g))
			}
		}
		if len(wa) == 0 {
			t.Errorf("user %s: shared/natsauth has no %s allow-list", user, what)
		}
	}
	same("publish", got.Publish, want.Publish)
	same("subscribe", got.Subscribe, want.Subscribe)
	switch g, w := got.Response, want.Response; {
	case (g == nil) != (w == nil):
		t.Errorf("user %s allow_responses %v, shared/natsauth %v", user, g != nil, w != nil)
	case g != nil && *g != *w:
		t.Errorf("user %s allow_responses %+v, shared/natsauth %+v", user, *g, *w)
	}
}

func minus(a, b []string) []string {
	var out []string
	for _, s := range a {
		if !slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	return out
}

// The single server's config defines shared/natsauth's users exactly (the
// cluster nodes are checked in TestNATSCluster).
func TestNATSConfUsersMatchGo(t *testing.T) {
	setNATSPasswords(t)
	opts, err := server.ProcessConfigFile("nats/nats.conf")
	if err != nil {
		t.Fatalf("nats-server rejects nats/nats.conf: %v", err)
	}
	checkUsers(t, opts)
}

// commandLine parses args as nats-server's main does (the same function).
func commandLine(args ...string) (*server.Options, error) {
	fs := flag.NewFlagSet("nats-server", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return server.ConfigureOptions(fs, args, nil, nil, nil)
}

// Without one of the passwords nats-server does not start at all: no user
// is left with an unset password.
func TestNATSRefusesToStartWithoutAPassword(t *testing.T) {
	for _, u := range natsauth.Users() {
		t.Run(u, func(t *testing.T) {
			setNATSPasswords(t)
			os.Unsetenv(natsauth.PasswordVar(u)) // t.Setenv restores it
			for _, conf := range []string{"nats/nats.conf", "nats/cluster/nats-1.conf"} {
				if _, err := commandLine("-c", conf); err == nil || !strings.Contains(err.Error(), natsauth.PasswordVar(u)) {
					t.Errorf("nats-server -c %s starts without $%s: %v", conf, natsauth.PasswordVar(u), err)
				}
			}
		})
	}
}

// `nats-server -c deploy/nats/nats.conf -p PORT -sd DIR -m PORT` works with
// the config as it stands: the flags override the file, and the users
// connect.
func TestNATSConfRunsFromTheCommandLine(t *testing.T) {
	passwords := setNATSPasswords(t)
	port, mport := freeaddr.Port(t), freeaddr.Port(t)
	opts, err := commandLine("-c", "nats/nats.conf", "-p", port, "-sd", t.TempDir(), "-m", mport)
	if err != nil {
		t.Fatal(err)
	}
	if strconv.Itoa(opts.Port) != port || strconv.Itoa(opts.HTTPPort) != mport || !opts.JetStream {
		t.Fatalf("port %d, monitor %d, JetStream %v; want %s, %s, true", opts.Port, opts.HTTPPort, opts.JetStream, port, mport)
	}
	opts.Host, opts.HTTPHost, opts.NoLog, opts.NoSigs = "127.0.0.1", "127.0.0.1", true, true
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	waitHealthy(t, s)
	connectAs(t, "nats://127.0.0.1:"+port, natsauth.Events, passwords[natsauth.Events])
}

// checkNATSPasswords requires a NATS server container to get all four
// passwords from the environment, without a default.
func checkNATSPasswords(t *testing.T, name string, s composeService) {
	t.Helper()
	for _, u := range natsauth.Users() {
		v := natsauth.PasswordVar(u)
		if got := s.Environment[v]; !strings.HasPrefix(got, "${"+v+":?") {
			t.Errorf("%s: %s = %q, want ${%s:?…} (required, no default)", name, v, got, v)
		}
	}
}

// In compose each service is its own NATS user, with only its own password,
// and the server gets all of them.
func TestComposeNATSUsers(t *testing.T) {
	f := loadCompose(t, composePath)
	nats := f.Services["nats"]
	checkNATSPasswords(t, "nats", nats)
	if !slices.Contains(nats.Volumes, natsConfMount) {
		t.Errorf("nats does not mount %s", natsConfMount)
	}
	for _, name := range []string{"gateway", "identity", "session"} {
		env := f.Services[name].Environment
		if got := env["WXLOGIN_NATS_USER"]; got != name {
			t.Errorf("%s: WXLOGIN_NATS_USER = %q, want %s", name, got, name)
		}
		v := natsauth.PasswordVar(name)
		if got := env["WXLOGIN_NATS_PASSWORD"]; !strings.HasPrefix(got, "${"+v+":?") {
			t.Errorf("%s: WXLOGIN_NATS_PASSWORD = %q, want ${%s:?…}", name, got, v)
		}
		for k, val := range env {
			for _, u := range natsauth.Users() {
				if u != name && (k == natsauth.PasswordVar(u) || strings.Contains(val, natsauth.PasswordVar(u))) {
					t.Errorf("%s gets %s's NATS password (%s)", name, u, k)
				}
			}
		}
	}
	if _, ok := f.Services["migrate"].Environment["WXLOGIN_NATS_PASSWORD"]; ok {
		t.Error("migrate gets a NATS password; it only migrates Postgres")
	}
}
