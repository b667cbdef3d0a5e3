package store_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/wxlogin/wxlogin/services/identity/internal/store"
	"github.com/wxlogin/wxlogin/shared/pgtest"
)

// TestSearchUsesItsIndexes: each kind of search is answered from the index
// built for it (migration 00005), so the Go search texts and the indexed
// expressions cannot drift apart unnoticed, and no search scans users
// (except the documented 1-character one).
func TestSearchUsesItsIndexes(t *testing.T) {
	_, db := newStore(t)
	ctx := context.Background()
	conn, err := db.Connx(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// On a tiny table a scan is cheapest; forbid it to see which index the
	// plan would use at scale.
	if _, err := conn.ExecContext(ctx, `SET enable_seqscan = off`); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		branches []string
		args     []any
		want     string
	}{
		{"exact phone", store.ExactBranches[:1], []any{"x"}, "users_phone_number_idx"},
		{"exact unionid", store.ExactBranches[:1], []any{"x"}, "users_unionid_key"},
		{"exact openid", store.ExactBranches[1:], []any{"x"}, "identities_openid_idx"},
		{"exact identity unionid", store.ExactBranches[1:], []any{"x"}, "identities_unionid_idx"},
		{"substring of a user field", first(store.SearchBranches("zhang")), []any{"%zhang%"}, "users_search_trgm_idx"},
		{"substring of openid, unionid", second(store.SearchBranches("zhang")), []any{"%zhang%"}, "identities_search_trgm_idx"},
		{"two characters of a nickname", first(store.SearchBranches("小明")), []any{"小明"}, "users_nickname_bigram_idx"},
	} {
		for _, b := range tc.branches {
			var plan []string
			if err := conn.SelectContext(ctx, &plan, `EXPLAIN SELECT u.id FROM `+b, tc.args...); err != nil {
				t.Fatalf("explain %s: %v", tc.name, err)
			}
			text := strings.Join(plan, "\n")
			if !strings.Contains(text, tc.want) {
				t.Errorf("%s does not use %s:\n%s", tc.name, tc.want, text)
			}
			if strings.Contains(text, "Seq Scan") {
				t.Errorf("%s scans:\n%s", tc.name, text)
			}
		}
	}
}

func first(b []string, _ []any) []string  { return b[:1] }
func second(b []string, _ []any) []string { return b[1:2] }

// TestMigrateAsDatabaseOwner: the migrations, pg_trgm included, run for a
// role that owns its database but is no superuser (pg_trgm is trusted).
func TestMigrateAsDatabaseOwner(t *testing.T) {
	admin, err := sqlx.Open("postgres", pgtest.ServerURL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "wxlogin_owner_" + hex.EncodeToString(b)
	for _, q := range []string{
		`CREATE ROLE ` + name + ` LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE`,
		`CREATE DATABASE ` + name + ` OWNER ` + name,
	} {
		if _, err := admin.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() {
		_, _ = admin.Exec(`DROP DATABASE IF EXISTS ` + name + ` WITH (FORCE)`)
		_, _ = admin.Exec(`DROP ROLE IF EXISTS ` + name)
	})
	u, err := url.Parse(pgtest.ServerURL())
	if err != nil {
		t.Fatal(err)
	}
	u.User, u.Path = url.User(name), "/"+name
	if err := migrate(u.String()); err != nil {
		t.Fatalf("migrate as a non-superuser owner: %v", err)
	}
	var super bool
	if err := admin.Get(&super, `SELECT rolsuper FROM pg_roles WHERE rolname = $1`, name); err != nil || super {
		t.Fatalf("the role is a superuser (%v, %v)", super, err)
	}
	db, err := sqlx.Open("postgres", u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var ext string
	if err := db.Get(&ext, `SELECT extname FROM pg_extension WHERE extname = 'pg_trgm'`); err != nil {
		t.Fatalf("pg_trgm not installed: %v", err)
	}
}

// TestNeverTheLastAdmin: two admins revoking each other at once, or one
// disabling the other while being revoked, leave one admin standing; the
// audit rows match what happened.
func TestNeverTheLastAdmin(t *testing.T) {
	s, db := newStore(t)
	ctx := context.Background()
	mk := func(name string) string {
		t.Helper()
		res, err := s.LoginWechat(ctx, store.WechatLogin{Kind: "miniprogram", AppID: mpApp, OpenID: "o-" + name, SessionKey: "k"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.SetUserAdmin(ctx, "", res.User.ID, true); err != nil {
			t.Fatal(err)
		}
		return res.User.ID
	}
	for round := range 10 {
		a, b := mk(fmt.Sprint("a", round)), mk(fmt.Sprint("b", round))
		errs := make(chan error, 2)
		go func() { _, err := s.SetUserAdmin(ctx, b, a, false); errs <- err }()
		go func() {
			var err error
			if round%2 == 0 {
				_, err = s.SetUserAdmin(ctx, a, b, false)
			} else {
				_, err = s.SetDisabled(ctx, a, b, true)
			}
			errs <- err
		}()
		var failed int
		for range 2 {
			if err := <-errs; errors.Is(err, store.ErrLastAdmin) {
				failed++
			} else if err != nil {
				t.Fatal(err)
			}
		}
		if n := count(t, db, `SELECT count(*) FROM users WHERE is_admin AND disabled_at IS NULL`); n != 1 || failed != 1 {
			t.Fatalf("round %d: %d enabled admins, %d refused; want 1 and 1", round, n, failed)
		}
		// Back to no admins for the next round.
		if _, err := db.Exec(`UPDATE users SET is_admin = false`); err != nil {
			t.Fatal(err)
		}
	}
	// Every grant and every change that happened is audited, the refused ones not.
	if n := count(t, db, `SELECT count(*) FROM admin_audit`); n != 10*2+10 {
		t.Errorf("%d audit rows, want %d (20 grants, 10 changes)", n, 10*2+10)
	}
}
