package freeaddr

import (
	"net"
	"testing"
)

func TestAddrCanBeListenedOn(t *testing.T) {
	addr := Addr(t)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on %s: %v", addr, err)
	}
	ln.Close()
	if p := Port(t); p == "" || p == "0" {
		t.Fatalf("port %q", p)
	}
}
