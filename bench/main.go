// Command bench is wxlogin's load generator (make bench, docs/BENCHMARKS.md).
//
// By default it builds the services, starts them as separate processes
// (gateway, identity, session, NATS from deploy/nats/nats.conf, the fake
// WeChat in its load mode) on a fresh database of the machine's Postgres
// (WXLOGIN_BENCH_DATABASE_URL, else WXLOGIN_TEST_DATABASE_URL, else the
// local server), with the rate limit off, then drives the HTTP API with
// -clients concurrent clients for -duration per scenario and prints a
// table: requests/s, latency percentiles, errors by code, CPU per operation
// of every process (/proc), Postgres commits, WAL and row writes per login.
// The same run measures a bare chain of the same shape as the baseline.
//
// With -target URL it drives a running stack instead (its WeChat must be
// the fake with FAKEWECHAT_LOAD_CODES=true, its rate limit off) and reports
// the HTTP figures only.
//
// It exits non-zero when any request failed.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/wxlogin/wxlogin/shared/pgtest"
)

var discard = slog.New(slog.DiscardHandler)

func main() {
	// The bench's own child processes (see natsd and bare.go).
	if len(os.Args) > 1 {
		sub := map[string]func() error{
			"natsd":        func() error { return natsd(os.Args[2:]) },
			"bare-gateway": bareGateway, "bare-login": bareLogin, "bare-sign": bareSign,
		}[os.Args[1]]
		if sub != nil {
			if err := sub(); err != nil {
				fmt.Fprintf(os.Stderr, "bench %s: %v\n", os.Args[1], err)
				os.Exit(1)
			}
			return
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := runBench(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// config is the command line.
type config struct {
	clients    int
	duration   time.Duration
	short      bool
	target     string
	only       []string
	polls      int
	pollWindow time.Duration
	pgSettle   time.Duration
	profileDir string
	repo       string
	natsSync   string
}

func parseFlags(args []string) (config, error) {
	var c config
	var only string
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.IntVar(&c.clients, "clients", 64, "concurrent clients")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "load time per scenario")
	fs.BoolVar(&c.short, "short", false, "a quick run (about 1 s per scenario, CI): zero errors or exit 1")
	fs.StringVar(&c.target, "target", "", "base URL of a running stack to drive instead of starting one (HTTP figures only)")
	fs.StringVar(&only, "scenarios", "", "comma-separated scenario keys to run (default all): login-returning, login-new, me, refresh, qr, longpoll, bare-returning, bare-new")
	fs.IntVar(&c.polls, "polls", 1000, "browsers long-polling pending tickets at once in the longpoll scenario")
	fs.DurationVar(&c.pollWindow, "poll-window", 10*time.Second, "how long the longpoll scenario measures the waiting polls")
	fs.DurationVar(&c.pgSettle, "pg-settle", 11*time.Second, "wait before reading Postgres statistics (an idle backend reports its last second of counts after 10 s)")
	fs.StringVar(&c.profileDir, "profile", "", "directory for CPU profiles of gateway, identity and session taken during each wxlogin scenario (turns on WXLOGIN_PPROF)")
	fs.StringVar(&c.natsSync, "nats-sync", "", "override deploy/nats/nats.conf's JetStream sync_interval (always) for the run: always or a duration such as 2m, NATS's default")
	fs.StringVar(&c.repo, "repo", "", "the repository's root (default: the directory holding go.work, from the working directory up)")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if c.short {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["duration"] {
			c.duration = 1500 * time.Millisecond
		}
		if !set["poll-window"] {
			c.pollWindow = 2 * time.Second
		}
		if !set["pg-settle"] {
			c.pgSettle = 0
		}
	}
	if c.clients < 1 || c.duration <= 0 || c.polls < 1 || c.pollWindow <= 0 || c.pollWindow > 20*time.Second {
		return config{}, errors.New("-clients, -duration, -polls must be positive, -poll-window within 0..20s (the polls wait 30 s)")
	}
	for k := range strings.SplitSeq(only, ",") {
		if k = strings.TrimSpace(k); k != "" {
			c.only = append(c.only, k)
		}
	}
	return c, nil
}

func findRepo() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.work above the working directory: run from the repository or pass -repo")
		}
		dir = parent
	}
}

func pgAdminURL() string {
	if u := os.Getenv("WXLOGIN_BENCH_DATABASE_URL"); u != "" {
		return u
	}
	return pgtest.ServerURL()
}

func runBench(ctx context.Context, args []string, out io.Writer) error {
	cfg, err := parseFlags(args)
	if err != nil {
		return err
	}
	id := make([]byte, 3)
	_, _ = rand.Read(id)
	r := &run{
		clients: cfg.clients, id: hex.EncodeToString(id), pool: 16,
		hc: &http.Client{Transport: &http.Transport{
			MaxIdleConnsPerHost: cfg.clients + cfg.polls, DisableCompression: true, IdleConnTimeout: time.Minute,
		}},
	}
	if cfg.short {
		r.pool = 4
	}
	b := &bencher{cfg: cfg, r: r, out: out, t0: time.Now()}
	var scenarios []scenario
	for _, sc := range r.scenarios() {
		if (len(cfg.only) == 0 || slices.Contains(cfg.only, sc.key)) && !(cfg.target != "" && sc.bare) {
			scenarios = append(scenarios, sc)
		}
	}
	withPolls := len(cfg.only) == 0 || slices.Contains(cfg.only, "longpoll")

	fmt.Fprintf(out, "# wxlogin bench, %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(out, "%s; %d clients, %s per scenario%s.\n\n", machine(), cfg.clients, cfg.duration, map[bool]string{true: " (-short)"}[cfg.short])

	if cfg.target != "" {
		fmt.Fprintf(out, "Target: %s (HTTP figures only).\n\n", cfg.target)
		r.base = cfg.target
		rows, err := b.scenarios(ctx, &stack{base: cfg.target}, scenarios, withPolls)
		writeReport(out, rows)
		return errors.Join(err, failed(rows))
	}

	repo := cfg.repo
	if repo == "" {
		if repo, err = findRepo(); err != nil {
			return err
		}
	}
	dir, err := os.MkdirTemp("", "wxlogin-bench-")
	if err != nil {
		return err
	}
	keep := false
	defer func() {
		if !keep {
			os.RemoveAll(dir)
		}
	}()
	bin := filepath.Join(dir, "bin")
	b.progress("building the services")
	if err := buildServices(ctx, repo, bin); err != nil {
		return err
	}
	fake, fakeURL, err := startFake(ctx, dir, bin)
	if err != nil {
		return err
	}
	defer func() { _ = fake.cmd.Process.Signal(syscall.SIGTERM); _ = fake.cmd.Wait() }()
	o := stackOptions{repo: repo, dir: dir, bin: bin, fakeURL: fakeURL, fake: fake, pgAdmin: pgAdminURL(), pprof: cfg.profileDir != "", natsSync: cfg.natsSync}

	var rows []row
	var runErr error
	var wx, bare []scenario
	for _, sc := range scenarios {
		if sc.bare {
			bare = append(bare, sc)
		} else {
			wx = append(wx, sc)
		}
	}
	var idle, after map[string]int64
	if len(wx) > 0 || withPolls {
		b.progress("starting wxlogin")
		st, err := startWxlogin(ctx, o)
		if err != nil {
			keep = true
			return fmt.Errorf("%w (logs kept in %s)", err, dir)
		}
		idle = st.rss()
		r.base = st.base
		got, err := b.scenarios(ctx, st, wx, withPolls)
		rows, runErr = append(rows, got...), err
		after = st.rss()
		if aerr := st.alive(); aerr != nil {
			runErr = errors.Join(runErr, aerr)
		}
		st.stop()
	}
	if len(bare) > 0 && runErr == nil {
		b.progress("starting the bare chain")
		st, err := startBare(ctx, o)
		if err != nil {
			keep = true
			return fmt.Errorf("%w (logs kept in %s)", err, dir)
		}
		r.base = st.base
		got, err := b.scenarios(ctx, st, bare, false)
		rows, runErr = append(rows, got...), errors.Join(runErr, err)
		st.stop()
	}
	writeReport(out, rows)
	writeRatios(out, rows)
	if idle != nil {
		writeRSS(out, idle, after)
	}
	for _, n := range b.pollNotes {
		fmt.Fprintln(out, n)
	}
	if err := errors.Join(runErr, failed(rows)); err != nil {
		keep = true
		return fmt.Errorf("%w (logs kept in %s)", err, dir)
	}
	return nil
}

// failed is an error when any request of rows failed.
func failed(rows []row) error {
	var errs []error
	for _, r := range rows {
		if n := r.errs.total(); n > 0 {
			errs = append(errs, fmt.Errorf("%s: %d failed requests (%s)", r.name, n, errorsCell(r.errs)))
		}
	}
	return errors.Join(errs...)
}

// rss is the resident memory of each process of the stack.
func (s *stack) rss() map[string]int64 {
	out := map[string]int64{}
	for name, c := range s.children {
		if v, err := rss(c.pid()); err == nil {
			out[name] = v
		}
	}
	if s.fake != nil {
		if v, err := rss(s.fake.pid()); err == nil {
			out["fake"] = v
		}
	}
	return out
}

func writeRSS(w io.Writer, idle, after map[string]int64) {
	var cells [][]string
	for _, p := range []string{"gateway", "identity", "session", "nats", "fake"} {
		cells = append(cells, []string{p, mib(idle[p]), mib(after[p])})
	}
	fmt.Fprintln(w, markdownTable([]string{"process", "RSS idle, after start", "RSS after the run"}, cells))
}

// writeRatios states wxlogin's login rates as shares of the bare chain's.
func writeRatios(w io.Writer, rows []row) {
	by := map[string]row{}
	for _, r := range rows {
		by[r.name] = r
	}
	for _, p := range [][2]string{
		{"mini-program login, returning users", "bare chain: login, returning users"},
		{"mini-program login, new users", "bare chain: login, new users"},
	} {
		a, okA := by[p[0]]
		b, okB := by[p[1]]
		if okA && okB && b.rate() > 0 {
			fmt.Fprintf(w, "- %s: %.0f%% of the bare chain's rate (%s/s against %s/s)\n", p[0], 100*a.rate()/b.rate(),
				thousands(int(a.rate()+0.5)), thousands(int(b.rate()+0.5)))
		}
	}
	fmt.Fprintln(w)
}

// machine describes the CPU (from /proc/cpuinfo).
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	load := ""
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		load = ", load average " + strings.Join(strings.Fields(string(b))[:3], " ") + " at the start"
	}
	return fmt.Sprintf("%d × %s, %s/%s%s", runtime.NumCPU(), model, runtime.GOOS, runtime.GOARCH, load)
}

// bencher measures scenarios on a stack.
type bencher struct {
	cfg       config
	r         *run
	out       io.Writer
	pollNotes []string
	t0        time.Time
}

// progress tells the terminal where the run is (stderr: stdout is the report).
func (b *bencher) progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: [%5.1fs] %s\n", time.Since(b.t0).Seconds(), fmt.Sprintf(format, args...))
}

func (b *bencher) scenarios(ctx context.Context, st *stack, scs []scenario, withPolls bool) ([]row, error) {
	var rows []row
	for _, sc := range scs {
		b.progress("%s", sc.name)
		row, err := b.measure(ctx, st, sc)
		if err != nil {
			return rows, fmt.Errorf("%s: %w", sc.name, err)
		}
		rows = append(rows, row)
	}
	if withPolls {
		b.progress("%d long polls", b.cfg.polls)
		row, err := b.longPolls(ctx, st)
		if err != nil {
			return rows, fmt.Errorf("long polls: %w", err)
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// settle waits until the event stream holds every event of the logins so
// far; it returns how long that took.
func (b *bencher) settle(ctx context.Context, st *stack) (time.Duration, error) {
	if st.events == nil {
		return 0, nil
	}
	t0 := time.Now()
	var bad error
	err := waitFor(ctx, 60*time.Second, "the outbox to relay every event", func() bool {
		counts, err := st.eventCounts(ctx)
		if err != nil {
			return false
		}
		ok, err := b.r.drained(counts)
		bad = err
		return ok || err != nil
	})
	return time.Since(t0), errors.Join(bad, err)
}

func (b *bencher) measure(ctx context.Context, st *stack, sc scenario) (row, error) {
	if sc.setup != nil {
		if err := sc.setup(ctx); err != nil {
			return row{}, fmt.Errorf("setup: %w", err)
		}
	}
	if _, err := b.settle(ctx, st); err != nil {
		return row{}, err
	}
	measurePG := sc.pg && st.pg != nil
	var pg0 pgStats
	if measurePG {
		time.Sleep(b.cfg.pgSettle) // let the setup's statistics arrive (see -pg-settle)
		var err error
		if pg0, err = st.pg.stats(ctx); err != nil {
			return row{}, err
		}
	}
	var wal *walMeter
	if measurePG {
		wal = st.pg.meterWAL(ctx, pg0.lsn)
	}
	pids := st.pids(ctx)
	cpu0 := map[string]cpuSample{}
	for name, p := range pids {
		cpu0[name] = sampleCPU(p)
	}
	profiles := b.startProfiles(ctx, st, sc.key)

	o := runLoad(ctx, b.cfg.clients, b.cfg.duration, sc.op)
	drain, err := b.settle(ctx, st)
	if err != nil {
		return row{}, err
	}
	r := row{name: sc.name, ok: len(o.lat), elapsed: o.elapsed, lat: summarize(o.lat), errs: o.errs}
	if len(cpu0) > 0 && len(st.children) > 0 {
		r.cpu = map[string]time.Duration{}
		for name, p := range st.pids(ctx) {
			r.cpu[name] = used(cpu0[name], sampleCPU(p))
		}
	}
	if err := profiles(); err != nil {
		return row{}, err
	}
	if st.events != nil && sc.pg {
		r.notes = append(r.notes, fmt.Sprintf("every event on the stream %s after the load ended", ms(drain)))
	}
	if measurePG {
		time.Sleep(b.cfg.pgSettle)
		pg1, err := st.pg.stats(ctx)
		if err != nil {
			return row{}, err
		}
		d := pg1.sub(pg0)
		if own, note, err := wal.finish(ctx, pg1.lsn); err == nil {
			d.walBytes = own
			if note != "" {
				r.notes = append(r.notes, note)
			}
		} else {
			r.notes = append(r.notes, fmt.Sprintf("WAL bytes are the whole server's, other databases' writes included (per database: %v)", err))
		}
		r.pg = &d
	}
	if sc.notes != nil {
		sc.notes(&r)
	}
	return r, nil
}

// startProfiles takes a CPU profile of each service for the load's
// duration (with -profile); the returned function waits for them.
func (b *bencher) startProfiles(ctx context.Context, st *stack, key string) func() error {
	if b.cfg.profileDir == "" || len(st.ops) == 0 {
		return func() error { return nil }
	}
	if err := os.MkdirAll(b.cfg.profileDir, 0o755); err != nil {
		return func() error { return err }
	}
	var wg sync.WaitGroup
	errs := make([]error, 0, len(st.ops))
	var mu sync.Mutex
	secs := max(1, int(b.cfg.duration.Seconds()))
	for name, addr := range st.ops {
		wg.Go(func() {
			err := fetchProfile(ctx, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, secs),
				filepath.Join(b.cfg.profileDir, key+"."+name+".pprof"))
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		})
	}
	return func() error { wg.Wait(); return errors.Join(errs...) }
}

func fetchProfile(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
