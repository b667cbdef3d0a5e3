package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/lib/pq" // the driver the services use
)

// pgStats are Postgres's cumulative counters of one database (commits, row
// writes) and of the cluster (WAL bytes: pg_stat_wal has no per-database
// figure, so other databases' writes on the same server count too), and
// the WAL position, from which walBytes reads this database's share.
type pgStats struct {
	commits, walBytes, ins, upd, hotUpd, del float64
	lsn                                      string
}

// pgDelta is what happened between two pgStats.
type pgDelta = pgStats

func (a pgStats) sub(b pgStats) pgDelta {
	return pgDelta{commits: a.commits - b.commits, walBytes: a.walBytes - b.walBytes, ins: a.ins - b.ins,
		upd: a.upd - b.upd, hotUpd: a.hotUpd - b.hotUpd, del: a.del - b.del}
}

// walBytes is the size of the WAL records between two positions that are
// this database's: those touching its relations, and every record (commit
// records among them) of the transactions that did. It needs pg_walinspect
// (a contrib extension, PostgreSQL 15+) and the WAL still on disk; ok is
// an error without them, and the caller keeps the cluster-wide figure.
func (w *pgWatch) walBytes(ctx context.Context, from, to string) (float64, error) {
	if !w.walinspect {
		return 0, errors.New("no pg_walinspect")
	}
	var n float64
	w.queries.Add(1)
	err := w.db.QueryRowContext(ctx, `
		WITH r AS (SELECT xid, record_length, block_ref ~ ('rel \d+/' || $3 || '/') AS ours
		           FROM pg_get_wal_records_info($1::pg_lsn, $2::pg_lsn)),
		     x AS (SELECT DISTINCT xid FROM r WHERE ours AND xid <> '0')
		SELECT coalesce(sum(record_length), 0) FROM r WHERE ours OR xid IN (SELECT xid FROM x)`,
		from, to, w.oid).Scan(&n)
	return n, err
}

// pgWatch reads the statistics of one database through a connection to it
// (pg_stat_user_tables shows the current database only).
type pgWatch struct {
	db         *sql.DB
	name       string
	oid        string // the database's
	walinspect bool   // pg_walinspect is installed: WAL per database
	// queries counts the statements the bench ran in the database: each
	// is a transaction of its own that pg_stat_database counts as a
	// commit, which stats takes back out.
	queries atomic.Int64
}

func newPGWatch(dsn, name string) (*pgWatch, error) {
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	w := &pgWatch{db: db, name: name}
	if err := db.QueryRow(`SELECT oid::text FROM pg_database WHERE datname = $1`, name).Scan(&w.oid); err != nil {
		db.Close()
		return nil, fmt.Errorf("database %s: %w", name, err)
	}
	_, err = db.Exec(`CREATE EXTENSION IF NOT EXISTS pg_walinspect`)
	w.walinspect = err == nil
	return w, nil
}

func (w *pgWatch) Close() error { return w.db.Close() }

// stats is one statement, hence one transaction (one commit of its own in
// the next reading: negligible next to thousands of logins).
func (w *pgWatch) stats(ctx context.Context) (pgStats, error) {
	var s pgStats
	own := w.queries.Add(1) - 1 // this statement's commit is not in its own reading
	err := w.db.QueryRowContext(ctx, `
		SELECT d.xact_commit, pg_current_wal_flush_lsn()::text,
		       (SELECT wal_bytes FROM pg_stat_wal),
		       coalesce(sum(t.n_tup_ins), 0), coalesce(sum(t.n_tup_upd), 0),
		       coalesce(sum(t.n_tup_hot_upd), 0), coalesce(sum(t.n_tup_del), 0)
		FROM pg_stat_database d LEFT JOIN pg_stat_user_tables t ON true
		WHERE d.datname = $1
		GROUP BY d.xact_commit`, w.name).Scan(&s.commits, &s.lsn, &s.walBytes, &s.ins, &s.upd, &s.hotUpd, &s.del)
	if err != nil {
		return pgStats{}, fmt.Errorf("pg_stat: %w", err)
	}
	s.commits -= float64(own)
	return s, nil
}

// pids are the Postgres processes working for this database: its backends
// (the service's pool, autovacuum workers) and the server's own background
// processes (WAL writer, checkpointer, ...), which every database shares.
// Backends of other databases on the same server are left out.
func (w *pgWatch) pids(ctx context.Context) ([]int, error) {
	w.queries.Add(1)
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

// walMeter adds up this database's WAL as it is written, in short steps:
// on a busy server (other databases being dropped force checkpoints) a
// segment is recycled soon after it is full, so the WAL of a whole
// scenario is no longer there to read at its end. A step whose WAL is gone
// already is skipped and counted in lost.
type walMeter struct {
	w           *pgWatch
	from        string
	total       float64
	steps, lost int
	err         error
	stop, done  chan struct{}
}

// walStep is how often the meter reads.
const walStep = 200 * time.Millisecond

func (w *pgWatch) meterWAL(ctx context.Context, from string) *walMeter {
	m := &walMeter{w: w, from: from, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		t := time.NewTicker(walStep)
		defer t.Stop()
		for {
			select {
			case <-m.stop:
				return
			case <-t.C:
				m.step(ctx, "")
			}
		}
	}()
	return m
}

// step adds the WAL from the last position to "to" (the current flush
// position when empty).
func (m *walMeter) step(ctx context.Context, to string) {
	if m.err != nil {
		return
	}
	if to == "" {
		m.w.queries.Add(1)
		if m.err = m.w.db.QueryRowContext(ctx, `SELECT pg_current_wal_flush_lsn()::text`).Scan(&to); m.err != nil {
			return
		}
	}
	if to == m.from {
		return // nothing written (and an empty range is refused)
	}
	n, err := m.w.walBytes(ctx, m.from, to)
	m.steps++
	var pqErr *pq.Error
	switch {
	case errors.As(err, &pqErr) && pqErr.Code == "58P01": // undefined_file: the segment was recycled
		m.lost++
	case err != nil:
		m.err = err
	}
	m.total, m.from = m.total+n, to
}

// finish stops the meter and returns the WAL up to "to": what it read,
// scaled up by the share of steps it could not read (an estimate, said in
// note).
func (m *walMeter) finish(ctx context.Context, to string) (total float64, note string, err error) {
	close(m.stop)
	<-m.done
	m.step(ctx, to)
	if m.err != nil {
		return 0, "", m.err
	}
	if m.lost == 0 {
		return m.total, "", nil
	}
	if m.lost == m.steps {
		return 0, "", errors.New("every WAL segment was recycled before it could be read")
	}
	note = fmt.Sprintf("WAL bytes estimated: %d of %d steps of %s were recycled before they were read", m.lost, m.steps, walStep)
	return m.total * float64(m.steps) / float64(m.steps-m.lost), note, nil
}
