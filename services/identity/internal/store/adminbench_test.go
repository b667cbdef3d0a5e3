//go:build adminbench

package store_test

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/wxlogin/wxlogin/services/identity/internal/store"
)

// The adminbench build tag (make bench-admin) compiles this file: it seeds
// a million users, so `make test` leaves it out.
var adminBenchUsers = flag.Int("admin-bench-users", 1_000_000, "users to seed")

// Nickname parts of the seeded users: Chinese names of a surname and one or
// two given characters, and Latin ones, so pieces of nicknames are as
// selective as on a real user base (a few to a few thousand matches).
const (
	benchSurnames = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
	benchGiven    = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍鹏建红飞鑫波斌宇浩凯健俊帆帅旭宁龙林欢阳佳琳晨辉婷雪梅琴云莉倩颖玲萌诗雨欣怡梓涵子轩浩然一诺依晴思远博文天佑嘉懿俊熙若曦可馨语桐"
)

var benchLatin = []string{"Alice", "Bob", "Carol", "David", "Eve", "Frank", "Grace", "Heidi", "Ivan", "Judy", "Mallory", "Niaj",
	"Olivia", "Peggy", "Rupert", "Sybil", "Trent", "Victor", "Walter", "Xavier", "Yolanda", "Zoe"}

// seedUsers inserts n users, each with one mini-program identity, in a few
// set-based statements (generate_series), then analyzes the tables.
func seedUsers(t *testing.T, db *sqlx.DB, n int) {
	t.Helper()
	ctx := context.Background()
	latin := "ARRAY['" + strings.Join(benchLatin, "','") + "']"
	began := time.Now()
	// Building an index once is far quicker than growing it a row at a
	// time: the secondary indexes go, and come back as the migrations
	// defined them.
	var defs []string
	if err := db.SelectContext(ctx, &defs, `SELECT pg_get_indexdef(i.indexrelid) FROM pg_index AS i
		JOIN pg_class AS c ON c.oid = i.indexrelid
		WHERE i.indrelid IN ('users'::regclass, 'identities'::regclass) AND NOT i.indisprimary AND NOT i.indisunique`); err != nil {
		t.Fatal(err)
	}
	for _, d := range defs {
		name := strings.Fields(strings.SplitN(d, " ON ", 2)[0])
		if _, err := db.ExecContext(ctx, "DROP INDEX "+name[len(name)-1]); err != nil {
			t.Fatal(err)
		}
	}
	const chunk = 200_000
	for from := 1; from <= n; from += chunk {
		to := min(from+chunk-1, n)
		// User g: created g seconds before now (so the newest are the
		// highest g), a last login somewhere in the last 30 days, phone
		// 139 + 8 digits, an email for one in three, a unionid for half.
		_, err := db.ExecContext(ctx, fmt.Sprintf(`
INSERT INTO users (username, nickname, phone_number, email, unionid, created_at, last_login_at)
SELECT 'wx_' || substr(md5('u' || g), 1, 12),
	CASE WHEN g %% 5 = 0 THEN (%[1]s)[1 + g %% %[2]d] || ' ' || (%[1]s)[1 + (g / 7) %% %[2]d] || (g %% 1000)
	ELSE substr('%[3]s', 1 + g %% %[4]d, 1) || substr('%[5]s', 1 + (g / 3) %% %[6]d, 1) ||
		CASE WHEN g %% 2 = 0 THEN substr('%[5]s', 1 + (g / 11) %% %[6]d, 1) ELSE '' END
	END,
	CASE WHEN g %% 4 = 0 THEN '' ELSE '139' || lpad((g::bigint * 7919 %% 100000000)::text, 8, '0') END,
	CASE WHEN g %% 3 = 0 THEN 'user' || g || '@example.com' ELSE '' END,
	CASE WHEN g %% 2 = 0 THEN 'oUn' || substr(md5('union' || g), 1, 25) END,
	now() - make_interval(secs => %[7]d - g),
	now() - make_interval(secs => (g::bigint * 104729) %% 2592000)
FROM generate_series(%[8]d, %[9]d) AS g`, latin, len(benchLatin), benchSurnames, len([]rune(benchSurnames)),
			benchGiven, len([]rune(benchGiven)), n, from, to))
		if err != nil {
			t.Fatalf("seed users %d-%d: %v", from, to, err)
		}
	}
	if _, err := db.ExecContext(ctx, `
INSERT INTO identities (user_id, kind, appid, openid, unionid, created_at)
SELECT id, 'miniprogram', 'wxbenchapp0000001', 'oPen' || substr(md5(username), 1, 24), unionid, created_at FROM users`); err != nil {
		t.Fatalf("seed identities: %v", err)
	}
	for _, d := range defs {
		if _, err := db.ExecContext(ctx, d); err != nil {
			t.Fatalf("%s: %v", d, err)
		}
	}
	if _, err := db.ExecContext(ctx, `VACUUM ANALYZE users`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `VACUUM ANALYZE identities`); err != nil {
		t.Fatal(err)
	}
	t.Logf("seeded %d users and identities in %s", n, time.Since(began).Round(time.Second))
}

// timing collects the latencies of one kind of query.
type timing struct {
	name string
	runs []time.Duration
}

func (tm *timing) pct(p float64) time.Duration {
	s := slices.Clone(tm.runs)
	slices.Sort(s)
	i := int(float64(len(s))*p+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

// TestAdminSearchAtScale seeds a million users (make bench-admin) and times
// the admin search through the store, as identity runs it: search p99 must
// stay within 50 ms and the page of the newest users within 20 ms.
func TestAdminSearchAtScale(t *testing.T) {
	s, db := newStore(t)
	ctx := context.Background()
	n := *adminBenchUsers
	seedUsers(t, db, n)

	// Sample real values to search for.
	var sample []struct {
		Username string `db:"username"`
		Nickname string `db:"nickname"`
		Phone    string `db:"phone_number"`
		Email    string `db:"email"`
		UnionID  string `db:"unionid"`
		OpenID   string `db:"openid"`
	}
	if err := db.SelectContext(ctx, &sample, `SELECT u.username, u.nickname, u.phone_number, u.email, COALESCE(u.unionid, '') AS unionid, i.openid
		FROM users AS u TABLESAMPLE SYSTEM (1) JOIN identities AS i ON i.user_id = u.id LIMIT 150`); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	piece := func(s string, k int) string {
		r := []rune(s)
		if len(r) <= k {
			return s
		}
		i := rng.IntN(len(r) - k + 1)
		return string(r[i : i+k])
	}
	queries := map[string][]string{}
	for _, u := range sample {
		queries["nickname piece (2 chars)"] = append(queries["nickname piece (2 chars)"], piece(u.Nickname, 2))
		queries["nickname piece (3 chars)"] = append(queries["nickname piece (3 chars)"], piece(u.Nickname, 3))
		queries["username piece (6)"] = append(queries["username piece (6)"], piece(u.Username[3:], 6))
		queries["openid exact"] = append(queries["openid exact"], u.OpenID)
		queries["openid piece (10)"] = append(queries["openid piece (10)"], piece(u.OpenID, 10))
		if u.UnionID != "" {
			queries["unionid exact"] = append(queries["unionid exact"], u.UnionID)
			queries["unionid piece (10)"] = append(queries["unionid piece (10)"], piece(u.UnionID, 10))
		}
		if u.Phone != "" {
			queries["phone exact"] = append(queries["phone exact"], u.Phone)
			queries["phone piece (7)"] = append(queries["phone piece (7)"], piece(u.Phone, 7))
		}
		if u.Email != "" {
			queries["email piece"] = append(queries["email piece"], strings.SplitN(u.Email, "@", 2)[0])
		}
	}
	run := func(tm *timing, in store.Search) int {
		began := time.Now()
		_, total, _, err := s.SearchUsers(ctx, in)
		tm.runs = append(tm.runs, time.Since(began))
		if err != nil {
			t.Fatalf("search %+v: %v", in, err)
		}
		return total
	}

	// Warm the caches the way a running service has them.
	for _, q := range queries["nickname piece (3 chars)"][:30] {
		run(&timing{}, store.Search{Q: q, Limit: 20})
	}
	var all timing
	var rows []*timing
	names := make([]string, 0, len(queries))
	for name := range queries {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		tm := &timing{name: name}
		for _, q := range queries[name] {
			if total := run(tm, store.Search{Q: q, Limit: 20}); total == 0 {
				t.Errorf("%s %q found nobody", name, q)
			}
		}
		all.runs = append(all.runs, tm.runs...)
		rows = append(rows, tm)
	}
	newest := &timing{name: "newest users, page 1 (no q)"}
	for range 200 {
		run(newest, store.Search{Limit: 20})
	}
	deep := &timing{name: "newest users, page 50 (no q)"}
	for range 50 {
		run(deep, store.Search{Limit: 20, Offset: 980})
	}
	byLogin := &timing{name: "most recent logins, page 1 (no q, scans)"}
	for range 10 {
		run(byLogin, store.Search{Sort: store.SortLastLoginDesc, Limit: 20})
	}
	stats := &timing{name: "dashboard stats (scans)"}
	for range 10 {
		began := time.Now()
		if _, err := s.Stats(ctx); err != nil {
			t.Fatal(err)
		}
		stats.runs = append(stats.runs, time.Since(began))
	}

	var b strings.Builder
	fmt.Fprintf(&b, "\n%d users, %d identities\n\n| query | runs | p50 | p99 |\n| --- | ---: | ---: | ---: |\n", n, n)
	all.name = "**all searches**"
	for _, tm := range append(append(rows, &all), newest, deep, byLogin, stats) {
		fmt.Fprintf(&b, "| %s | %d | %.1f ms | %.1f ms |\n", tm.name, len(tm.runs), ms(tm.pct(0.5)), ms(tm.pct(0.99)))
	}
	t.Log(b.String())
	if p := all.pct(0.99); p > 50*time.Millisecond {
		t.Errorf("search p99 %s, want ≤ 50ms", p)
	}
	if p := newest.pct(0.99); p > 20*time.Millisecond {
		t.Errorf("newest users p99 %s, want ≤ 20ms", p)
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
