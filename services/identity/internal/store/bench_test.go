package store_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/wxlogin/wxlogin/services/identity/internal/store"
	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/pgtest"
)

// BenchmarkLoginWechat measures the store's share of a login, run with
// -cpu to vary the concurrency (connections are capped at 20 as in Run).
// Besides time it reports what Postgres wrote per login: commits, row
// writes (inserts + updates), the HOT share of the updates, and WAL bytes
// (WAL is cluster-wide: other work on the server adds to it).
func BenchmarkLoginWechat(b *testing.B) {
	for _, returning := range []bool{true, false} {
		b.Run(fmt.Sprintf("returning=%v", returning), func(b *testing.B) {
			dsn := pgtest.NewDatabase(b, migrate)
			open := func() (*store.Store, *sqlx.DB) {
				db, err := sqlx.Open("postgres", dsn)
				if err != nil {
					b.Fatal(err)
				}
				db.SetMaxOpenConns(20)
				s, err := store.New(context.Background(), db)
				if err != nil {
					b.Fatal(err)
				}
				return s, db
			}
			s, db := open()
			const users = 1000
			if returning {
				for i := range users {
					if _, err := s.LoginWechat(context.Background(), store.WechatLogin{Kind: api.KindMiniProgram, AppID: mpApp, OpenID: fmt.Sprint("o-", i), SessionKey: "k"}); err != nil {
						b.Fatal(err)
					}
				}
			}
			// Closing the pool ends its backends, which flushes their statistics.
			s.Close()
			db.Close()
			before := pgCounters(b, dsn)
			s, db = open()
			var n atomic.Int64
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					openid := fmt.Sprint("new-", i)
					if returning {
						openid = fmt.Sprint("o-", i%users)
					}
					if _, err := s.LoginWechat(context.Background(), store.WechatLogin{Kind: api.KindMiniProgram, AppID: mpApp, OpenID: openid, SessionKey: fmt.Sprint("k", i)}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			s.Close()
			db.Close()
			after := pgCounters(b, dsn)
			ops := float64(b.N)
			b.ReportMetric(float64(after.commits-before.commits)/ops, "commits/op")
			b.ReportMetric(float64(after.writes-before.writes)/ops, "rowwrites/op")
			b.ReportMetric(float64(after.hot-before.hot)/ops, "hot/op")
			b.ReportMetric(float64(after.wal-before.wal)/ops, "walB/op")
		})
	}
}

type pgStats struct{ commits, writes, hot, wal int64 }

// pgCounters reads the database's commit and row-write counters and the
// server's WAL position, from a connection of its own.
func pgCounters(b *testing.B, dsn string) pgStats {
	b.Helper()
	db, err := sqlx.Open("postgres", dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	var c pgStats
	err = db.QueryRow(`SELECT
		(SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()),
		(SELECT COALESCE(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM pg_stat_user_tables),
		(SELECT COALESCE(sum(n_tup_hot_upd), 0) FROM pg_stat_user_tables),
		pg_current_wal_lsn() - '0/0'`).Scan(&c.commits, &c.writes, &c.hot, &c.wal)
	if err != nil {
		b.Fatal(err)
	}
	return c
}
