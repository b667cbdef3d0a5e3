package identitysvc

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/wxlogin/wxlogin/shared/natstest"
	"github.com/wxlogin/wxlogin/shared/pgtest"
)

// /readyz is ok only while identity serves with NATS connected and
// Postgres answering.
func TestReadiness(t *testing.T) {
	ns := natstest.Start(t)
	up := natstest.Connect(t, ns)
	down := natstest.Connect(t, natstest.Start(t))
	down.Close()
	open := func(dsn string) *sqlx.DB {
		db, err := sqlx.Open("postgres", dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	db := open(pgtest.NewDatabase(t, nil))
	// Nothing listens on port 1: the ping is refused at once.
	noDB := open("postgres://postgres@127.0.0.1:1/wxlogin?sslmode=disable&connect_timeout=2")

	for _, tc := range []struct {
		name string
		r    *readiness
		want string // "" ready, else part of the error
	}{
		{"serving", &readiness{nc: up, db: db}, ""},
		{"starting or stopping", nil, "not serving"},
		{"NATS away", &readiness{nc: down, db: db}, "NATS not connected"},
		{"database away", &readiness{nc: up, db: noDB}, "database:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := tc.r.check(ctx)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("check = %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("check = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
