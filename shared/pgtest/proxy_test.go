package pgtest

import (
	"context"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
)

func TestProxyCutAndRestore(t *testing.T) {
	p := NewProxy(t)
	db := sqlx.MustOpen("postgres", p.URL(NewDatabase(t, nil)))
	defer db.Close()
	ping := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return db.PingContext(ctx)
	}
	if err := ping(); err != nil {
		t.Fatalf("through the proxy: %v", err)
	}
	p.Cut()
	if err := ping(); err == nil {
		t.Fatal("ping succeeded through a cut proxy")
	}
	p.Restore()
	if err := ping(); err != nil {
		t.Fatalf("after restore: %v", err)
	}
}

func TestProxyStallAndRestore(t *testing.T) {
	p := NewProxy(t)
	db := sqlx.MustOpen("postgres", p.URL(NewDatabase(t, nil)))
	defer db.Close()
	if err := db.Ping(); err != nil {
		t.Fatalf("through the proxy: %v", err)
	}
	p.Stall()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	answered := make(chan error, 1)
	go func() { answered <- db.PingContext(ctx) }()
	select {
	case err := <-answered:
		t.Fatalf("a stalled proxy answered: %v", err)
	case <-ctx.Done():
	}
	p.Restore()
	<-answered // the stalled ping ends once bytes flow again
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	if err := db.PingContext(ctx2); err != nil {
		t.Fatalf("after restore: %v", err)
	}
}
