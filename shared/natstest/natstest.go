// Package natstest runs a real nats-server with JetStream inside a test.
package natstest

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
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
