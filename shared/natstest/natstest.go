// Package natstest runs a real nats-server with JetStream inside a test.
package natstest

import (
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/wxlogin/wxlogin/shared/natsauth"
	"github.com/wxlogin/wxlogin/shared/natsconn"
)

// Start runs an embedded nats-server with JetStream on a random port, storing
// its data in a temporary directory; it is shut down when the test ends.
func Start(t testing.TB) *server.Server {
	t.Helper()
	return Run(t, Options(t))
}

// Options are Start's: JetStream on a random port, data in a temporary
// directory. A test that restarts the server keeps them (with the port it
// got) and passes them to Run again.
func Options(t testing.TB) *server.Options {
	return &server.Options{
		Host:      "127.0.0.1",
		Port:      -1,
		JetStream: true,
		StoreDir:  t.TempDir(),
		NoLog:     true,
		NoSigs:    true,
	}
}

// Run starts a nats-server from opts (which it does not change) and waits
// until it accepts connections; it is shut down when the test ends.
func Run(t testing.TB, opts *server.Options) *server.Server {
	t.Helper()
	s, err := server.NewServer(opts.Clone())
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("natstest: nats-server did not become ready")
	}
	t.Cleanup(s.Shutdown)
	return s
}

// Stop shuts s, a server from Start, down and returns restart, which runs
// another in its place: on the same port, so clients reconnect by
// themselves, and with the same JetStream store, so they find their streams
// and buckets again. The new server is shut down when the test ends.
func Stop(t testing.TB, s *server.Server) (restart func() *server.Server) {
	t.Helper()
	opts := Options(t)
	opts.Port = s.Addr().(*net.TCPAddr).Port
	opts.StoreDir = s.StoreDir()
	s.Shutdown()
	s.WaitForShutdown()
	return func() *server.Server {
		t.Helper()
		return Run(t, opts)
	}
}

// Connect returns a connection to s, closed when the test ends.
func Connect(t testing.TB, s *server.Server) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatalf("natstest: connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// Secured is a server that runs with wxlogin's NATS users (shared/natsauth):
// no anonymous access, each user only its own permissions.
type Secured struct {
	*server.Server
	// Passwords are the users' generated passwords, by user.
	Passwords map[string]string
}

// StartSecured runs an embedded nats-server with JetStream and wxlogin's
// users, each with a fresh random password; it is shut down when the test
// ends.
func StartSecured(t testing.TB) *Secured {
	t.Helper()
	passwords := natsauth.RandomPasswords()
	users, err := natsauth.ServerUsers(passwords)
	if err != nil {
		t.Fatal(err)
	}
	opts := Options(t)
	opts.Users = users
	return &Secured{Server: Run(t, opts), Passwords: passwords}
}

// ConnectAs returns a connection to s as user (with its inbox prefix),
// closed when the test ends.
func ConnectAs(t testing.TB, s *Secured, user string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL(), nats.UserInfo(user, s.Passwords[user]), nats.CustomInboxPrefix(natsconn.InboxPrefix(user)))
	if err != nil {
		t.Fatalf("natstest: connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	return nc
}
