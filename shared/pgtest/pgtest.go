// Package pgtest gives each test a fresh database on a real PostgreSQL server.
//
// The server is WXLOGIN_TEST_DATABASE_URL, else the local one on
// 127.0.0.1:5432. A test that cannot reach it fails: a suite that silently
// skips its database tests would pass with nothing checked.
package pgtest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"testing"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq" // the driver the services use
)

// DefaultURL is the server used when WXLOGIN_TEST_DATABASE_URL is unset.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// ServerURL returns the admin URL of the test server.
func ServerURL() string {
	if u := os.Getenv("WXLOGIN_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// NewDatabase creates an empty database with a random name, drops it when the
// test ends, and returns its URL. migrate, if not nil, is run on the URL first
// (pass the service's own migration code, so tests use the production schema).
func NewDatabase(t testing.TB, migrate func(dsn string) error) string {
	t.Helper()
	dsn, drop, err := Create(ServerURL(), "wxlogin_test_")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := drop(); err != nil {
			t.Logf("pgtest: %v", err)
		}
	})
	if migrate != nil {
		if err := migrate(dsn); err != nil {
			t.Fatalf("pgtest: migrate: %v", err)
		}
	}
	return dsn
}

// Create creates an empty database named prefix and random hex on the
// server at adminURL, and returns its URL and a function that drops it
// (closing its connections). The load generator (bench/) uses it too.
func Create(adminURL, prefix string) (dsn string, drop func() error, err error) {
	admin, err := sqlx.Open("postgres", adminURL)
	if err != nil {
		return "", nil, fmt.Errorf("pgtest: %w", err)
	}
	defer admin.Close()
	if err := admin.Ping(); err != nil {
		return "", nil, fmt.Errorf("pgtest: PostgreSQL at %s is not reachable (%v); start one or set WXLOGIN_TEST_DATABASE_URL", redact(adminURL), err)
	}
	u, err := url.Parse(adminURL)
	if err != nil {
		return "", nil, fmt.Errorf("pgtest: bad server URL %s", redact(adminURL))
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := prefix + hex.EncodeToString(b)
	if _, err := admin.Exec(`CREATE DATABASE ` + name); err != nil {
		return "", nil, fmt.Errorf("pgtest: create database: %w", err)
	}
	drop = func() error {
		db, err := sqlx.Open("postgres", adminURL)
		if err != nil {
			return err
		}
		defer db.Close()
		if _, err := db.Exec(`DROP DATABASE IF EXISTS ` + name + ` WITH (FORCE)`); err != nil {
			return fmt.Errorf("drop %s: %w", name, err)
		}
		return nil
	}
	u.Path = "/" + name
	return u.String(), drop, nil
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "the configured server"
	}
	return u.Redacted()
}
