// Package freeaddr gives tests a loopback address to listen on: one the
// kernel has just handed out and nothing holds any more. Another process
// may take it before the caller does; tests that start servers on it
// accept that rare race.
package freeaddr

import (
	"net"
	"testing"
)

// Addr is a free 127.0.0.1:port address.
func Addr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Port is Addr's port alone.
func Port(t testing.TB) string {
	t.Helper()
	_, port, err := net.SplitHostPort(Addr(t))
	if err != nil {
		t.Fatal(err)
	}
	return port
}
