package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/wxlogin/wxlogin/shared/pgtest"
)

func TestSubcommands(t *testing.T) {
	dsn := pgtest.NewDatabase(t, nil)
	t.Setenv("WXLOGIN_DATABASE_URL", dsn)
	ctx := context.Background()

	var out bytes.Buffer
	for range 2 { // migrate is idempotent
		if err := run(ctx, []string{"migrate"}, &out, &out); err != nil {
			t.Fatalf("migrate: %v", err)
		}
	}
	db, err := sqlx.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`INSERT INTO users (username) VALUES ('ada')`); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string // "" for success
		wantOut string
		admin   bool
	}{
		{"grant", []string{"grant-admin", "ada"}, "", "ada is now an administrator\n", true},
		{"grant again", []string{"grant-admin", "ada"}, "", "ada is now an administrator\n", true},
		{"revoke", []string{"revoke-admin", "ada"}, "", "ada is no longer an administrator\n", false},
		{"grant unknown", []string{"grant-admin", "nobody"}, "no such user", "", false},
		{"revoke unknown", []string{"revoke-admin", "nobody"}, "no such user", "", false},
		{"missing username", []string{"grant-admin"}, "usage", "", false},
		{"unknown command", []string{"serve-me"}, "usage", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout bytes.Buffer
			err := run(ctx, tc.args, &stdout, &stdout)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if stdout.String() != tc.wantOut {
				t.Errorf("output = %q, want %q", stdout.String(), tc.wantOut)
			}
			var admin bool
			if err := db.Get(&admin, `SELECT is_admin FROM users WHERE username = 'ada'`); err != nil || admin != tc.admin {
				t.Errorf("is_admin = %v (%v), want %v", admin, err, tc.admin)
			}
		})
	}
}
