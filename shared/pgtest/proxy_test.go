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
