package store_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/wxlogin/wxlogin/services/identity/internal/store"
)

// TestLoginCounter: logins counted in memory reach the dashboard's
// logins_24h after a flush, added to what is there; a failed flush keeps
// them for the next.
func TestLoginCounter(t *testing.T) {
	ctx := context.Background()
	s, db := newStore(t)
	c := store.NewLoginCounter(s, 0, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for range 3 {
		c.Add("miniprogram")
	}
	c.Add("app")
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	c.Add("miniprogram")

	// A failing write (the table is briefly gone) loses nothing.
	if _, err := db.Exec(`ALTER TABLE login_counts RENAME TO login_counts_away`); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(ctx); err == nil {
		t.Fatal("flush without the table succeeded")
	}
	if _, err := db.Exec(`ALTER TABLE login_counts_away RENAME TO login_counts`); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Logins24h["miniprogram"] != 4 || st.Logins24h["app"] != 1 {
		t.Fatalf("logins_24h %v, want miniprogram 4, app 1", st.Logins24h)
	}
}
