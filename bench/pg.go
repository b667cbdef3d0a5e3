package main

import (
	"context"
	"database/sql"
	"fmt"

	_ "github.com/lib/pq" // the driver the services use
)

// pgStats are Postgres's cumulative counters of one database (commits, row
// writes) and of the cluster (WAL bytes: pg_stat_wal has no per-database
// figure, so other databases' writes on the same server count too).
type pgStats struct {
	commits, walBytes, ins, upd, hotUpd, del float64
}

// pgDelta is what happened between two pgStats.
type pgDelta = pgStats

func (a pgStats) sub(b pgStats) pgDelta {
	return pgDelta{commits: a.commits - b.commits, walBytes: a.walBytes - b.walBytes, ins: a.ins - b.ins,
		upd: a.upd - b.upd, hotUpd: a.hotUpd - b.hotUpd, del: a.del - b.del}
}

// pgWatch reads the statistics of one database through a connection to it
// (pg_stat_user_tables shows the current database only).
type pgWatch struct {
	db   *sql.DB
	name string
}

func newPGWatch(dsn, name string) (*pgWatch, error) {
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	return &pgWatch{db: db, name: name}, nil
}

func (w *pgWatch) Close() error { return w.db.Close() }

// stats is one statement, hence one transaction (one commit of its own in
// the next reading: negligible next to thousands of logins).
func (w *pgWatch) stats(ctx context.Context) (pgStats, error) {
	var s pgStats
	err := w.db.QueryRowContext(ctx, `
		SELECT d.xact_commit,
		       (SELECT wal_bytes FROM pg_stat_wal),
		       coalesce(sum(t.n_tup_ins), 0), coalesce(sum(t.n_tup_upd), 0),
		       coalesce(sum(t.n_tup_hot_upd), 0), coalesce(sum(t.n_tup_del), 0)
		FROM pg_stat_database d LEFT JOIN pg_stat_user_tables t ON true
		WHERE d.datname = $1
		GROUP BY d.xact_commit`, w.name).Scan(&s.commits, &s.walBytes, &s.ins, &s.upd, &s.hotUpd, &s.del)
	if err != nil {
		return pgStats{}, fmt.Errorf("pg_stat: %w", err)
	}
	return s, nil
}

// pids are the Postgres processes working for this database: its backends
// (the service's pool, autovacuum workers) and the server's own background
// processes (WAL writer, checkpointer, ...), which every database shares.
// Backends of other databases on the same server are left out.
func (w *pgWatch) pids(ctx context.Context) ([]int, error) {
	rows, err := w.db.QueryContext(ctx, `
		SELECT pid FROM pg_stat_activity
		WHERE (datname = $1 OR (datname IS NULL AND backend_type <> 'client backend'))
		  AND pid <> pg_backend_pid()`, w.name)
	if err != nil {
		return nil, fmt.Errorf("pg_stat_activity: %w", err)
	}
	defer rows.Close()
	var out []int
	for rows.Next() {
		var pid int
		if err := rows.Scan(&pid); err != nil {
			return nil, err
		}
		out = append(out, pid)
	}
	return out, rows.Err()
}
