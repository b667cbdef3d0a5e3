package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/shared/api/identity"
	"github.com/wxlogin/wxlogin/shared/natsauth"
	"github.com/wxlogin/wxlogin/shared/natsconn"
	"github.com/wxlogin/wxlogin/shared/pgtest"
	"github.com/wxlogin/wxlogin/shared/wechat/fakewechat"
)

// child is a process the bench started.
type child struct {
	name string
	cmd  *exec.Cmd
	log  string // its stdout and stderr
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// stack is what a run measures: the processes by column name (processes),
// the database, and the connections the bench watches them through.
type stack struct {
	dir      string // the run's directory: binaries, logs, NATS store
	base     string // the front's URL
	children map[string]*child
	ops      map[string]string // service -> ops listener (metrics, pprof)
	pg       *pgWatch
	dropDB   func() error
	events   jetstream.Stream // WXLOGIN_EVENTS, read as the events user; nil for the bare chain
	nc       *nats.Conn
	fake     *child // shared by both stacks; not stopped by stop
}

// stackOptions are what both stacks share.
type stackOptions struct {
	repo, dir string
	bin       string // the built service binaries
	fakeURL   string
	fake      *child
	pgAdmin   string
	pprof     bool
	natsSync  string // JetStream sync_interval override, "" = the config's
}

// buildServices builds the service binaries into dir, as procs_test.go does.
func buildServices(ctx context.Context, repo, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir, "./services/gateway", "./services/identity", "./services/session", "./services/fakewechat")
	cmd.Dir = repo
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %w\n%s", err, out)
	}
	return nil
}

// freeAddr returns a loopback address nothing listens on (yet).
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// start runs name (a binary path and its arguments) with env, its output
// in dir/<name>.log.
func start(dir, name string, env []string, argv ...string) (*child, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the child has its own copy
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, f, f
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return &child{name: name, cmd: cmd, log: logPath}, nil
}

// stop asks every child to stop (SIGTERM), then kills what is left after 10 s.
func (s *stack) stop() {
	for _, c := range s.children {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, c := range s.children {
		done := make(chan struct{})
		go func() { _ = c.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = c.cmd.Process.Kill()
			<-done
		}
	}
	if s.nc != nil {
		s.nc.Close()
	}
	if s.pg != nil {
		_ = s.pg.Close()
	}
	if s.dropDB != nil {
		if err := s.dropDB(); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
		}
	}
}

// alive fails when a child has exited: its log's tail says why.
func (s *stack) alive() error {
	for _, c := range s.children {
		if c.cmd.ProcessState != nil || c.cmd.Process.Signal(syscall.Signal(0)) != nil {
			return fmt.Errorf("%s exited; see %s", c.name, c.log)
		}
	}
	return nil
}

// pids are the processes of each CPU column; postgres's are looked up
// anew (its pool may open connections as the load grows).
func (s *stack) pids(ctx context.Context) map[string][]int {
	out := map[string][]int{"bench": {os.Getpid()}}
	if s.fake != nil {
		out["fake"] = []int{s.fake.pid()}
	}
	for name, c := range s.children {
		out[name] = []int{c.pid()}
	}
	if s.pg != nil {
		if p, err := s.pg.pids(ctx); err == nil {
			out["postgres"] = p
		}
	}
	return out
}

// waitFor polls ok every 100 ms until it holds or limit passes.
func waitFor(ctx context.Context, limit time.Duration, what string, ok func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for !ok() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("timed out after %s waiting for %s", limit, what)
		case <-t.C:
		}
	}
	return nil
}

func httpOK(url string) func() bool {
	return func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
}

// baseEnv is the bench's environment without NATS credentials: no process
// sees another's password.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, "WXLOGIN_NATS_") && !strings.HasPrefix(k, "BENCH_BARE_") && !strings.HasPrefix(k, "FAKEWECHAT_") {
			env = append(env, kv)
		}
	}
	return env
}

// startFake runs the fake WeChat (services/fakewechat) in its load mode, in
// a process of its own so that its CPU is not the services'.
func startFake(ctx context.Context, dir, bin string) (*child, string, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	env := append(baseEnv(), "FAKEWECHAT_ADDR="+addr, "FAKEWECHAT_LOAD_CODES=true", "WXLOGIN_LOG_LEVEL=warn")
	c, err := start(dir, "fake", env, filepath.Join(bin, "fakewechat"))
	if err != nil {
		return nil, "", err
	}
	url := "http://" + addr
	if err := waitFor(ctx, 30*time.Second, "the fake WeChat", httpOK(url+"/fake/")); err != nil {
		_ = c.cmd.Process.Kill()
		return nil, "", err
	}
	return c, url, nil
}

// prepare makes the stack's directory and its fresh database (named
// dbPrefix and random hex), watched for statistics; it returns the
// database's URL.
func (s *stack) prepare(o stackOptions, dbPrefix string) (string, error) {
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return "", err
	}
	dsn, drop, err := pgtest.Create(o.pgAdmin, dbPrefix)
	if err != nil {
		return "", err
	}
	s.dropDB = drop
	if s.pg, err = newPGWatch(dsn, dbName(dsn)); err != nil {
		return "", err
	}
	return dsn, nil
}

// startWxlogin runs NATS (deploy/nats/nats.conf), identity, session and the
// gateway as separate processes on a fresh database, the rate limit off.
func startWxlogin(ctx context.Context, o stackOptions) (_ *stack, err error) {
	s := &stack{dir: filepath.Join(o.dir, "wxlogin"), children: map[string]*child{}, ops: map[string]string{}, fake: o.fake}
	defer func() {
		if err != nil {
			s.stop()
		}
	}()
	dsn, err := s.prepare(o, "wxlogin_bench_")
	if err != nil {
		return nil, err
	}

	passwords := natsauth.RandomPasswords()
	natsAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(natsAddr)
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	natsEnv := baseEnv()
	for u, pw := range passwords {
		natsEnv = append(natsEnv, natsauth.PasswordVar(u)+"="+pw)
	}
	natsArgs := []string{"natsd", "-c", filepath.Join(o.repo, "deploy", "nats", "nats.conf"), "-p", port,
		"-sd", filepath.Join(s.dir, "nats-store"), "-sync", o.natsSync}
	if o.pprof {
		profAddr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		_, profPort, _ := net.SplitHostPort(profAddr)
		natsArgs = append(natsArgs, "-prof", profPort)
		s.ops["nats"] = profAddr
	}
	if s.children["nats"], err = start(s.dir, "nats", natsEnv, append([]string{self}, natsArgs...)...); err != nil {
		return nil, err
	}
	natsURL := "nats://" + natsAddr
	if err := waitFor(ctx, 30*time.Second, "NATS", func() bool {
		nc, err := natsconn.Connect(natsconn.Options{URL: natsURL, Role: natsauth.Events,
			Credentials: natsconn.Credentials{User: natsauth.Events, Password: passwords[natsauth.Events]}, Log: discard})
		if err != nil {
			return false
		}
		s.nc = nc
		return true
	}); err != nil {
		return nil, fmt.Errorf("%w; see %s", err, s.children["nats"].log)
	}

	httpAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	s.base = "http://" + httpAddr
	env := append(baseEnv(),
		"WXLOGIN_NATS_URL="+natsURL,
		"WXLOGIN_DATABASE_URL="+dsn,
		"WXLOGIN_HTTP_ADDR="+httpAddr,
		"WXLOGIN_PUBLIC_URL="+s.base,
		"WXLOGIN_WECHAT_API_BASE="+o.fakeURL,
		"WXLOGIN_WECHAT_OPEN_BASE="+o.fakeURL,
		"WXLOGIN_MINIPROGRAM_APPID="+fakewechat.DevMiniProgramAppID,
		"WXLOGIN_MINIPROGRAM_SECRET="+fakewechat.DevMiniProgramSecret,
		"WXLOGIN_WEB_APPID="+fakewechat.DevWebAppID,
		"WXLOGIN_WEB_SECRET="+fakewechat.DevWebSecret,
		// A load test from one address needs the per-address limit off.
		"WXLOGIN_RATE_LIMIT=off",
		// QR tickets come far faster than the 100/s the default cap is
		// sized for.
		"WXLOGIN_QR_MAX_BYTES="+fmt.Sprint(256<<20),
		fmt.Sprintf("WXLOGIN_PPROF=%t", o.pprof),
	)
	for _, name := range []string{"identity", "session", "gateway"} {
		ops, err := freeAddr()
		if err != nil {
			return nil, err
		}
		s.ops[name] = ops
		e := append(slices.Clip(env), "WXLOGIN_NATS_USER="+name, "WXLOGIN_NATS_PASSWORD="+passwords[name], "WXLOGIN_METRICS_ADDR="+ops)
		if s.children[name], err = start(s.dir, name, e, filepath.Join(o.bin, name)); err != nil {
			return nil, err
		}
	}
	if err := waitFor(ctx, 60*time.Second, "the gateway's /readyz", func() bool {
		return s.alive() == nil && httpOK(s.base+"/readyz")()
	}); err != nil {
		if aerr := s.alive(); aerr != nil {
			return nil, aerr
		}
		return nil, fmt.Errorf("%w; logs in %s", err, s.dir)
	}
	js, err := jetstream.New(s.nc)
	if err != nil {
		return nil, err
	}
	// identity creates the stream at start, before it answers: readiness
	// implies it exists.
	if s.events, err = js.Stream(ctx, identity.EventStream); err != nil {
		return nil, fmt.Errorf("event stream: %w", err)
	}
	return s, nil
}

// eventCounts are the messages on the event stream by subject.
func (s *stack) eventCounts(ctx context.Context) (map[string]uint64, error) {
	if s.events == nil {
		return nil, nil
	}
	info, err := s.events.Info(ctx, jetstream.WithSubjectFilter(identity.EventStreamSubjects))
	if err != nil {
		return nil, err
	}
	return info.State.Subjects, nil
}

// startBare runs the bare chain: a plain NATS server, its signer, its login
// worker on a fresh database of its own and its gin front.
func startBare(ctx context.Context, o stackOptions) (_ *stack, err error) {
	s := &stack{dir: filepath.Join(o.dir, "bare"), children: map[string]*child{}, fake: o.fake}
	defer func() {
		if err != nil {
			s.stop()
		}
	}()
	dsn, err := s.prepare(o, "wxlogin_bare_")
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	natsAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(natsAddr)
	if s.children["nats"], err = start(s.dir, "nats", baseEnv(), self, "natsd", "-p", port); err != nil {
		return nil, err
	}
	natsURL := "nats://" + natsAddr
	if err := waitFor(ctx, 30*time.Second, "NATS", func() bool {
		nc, err := nats.Connect(natsURL)
		if err == nil {
			nc.Close()
		}
		return err == nil
	}); err != nil {
		return nil, err
	}
	httpAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	s.base = "http://" + httpAddr
	env := append(baseEnv(), "BENCH_BARE_NATS_URL="+natsURL, "BENCH_BARE_DATABASE_URL="+dsn, "BENCH_BARE_HTTP_ADDR="+httpAddr,
		"BENCH_BARE_WECHAT_API_BASE="+o.fakeURL, "BENCH_BARE_APPID="+fakewechat.DevMiniProgramAppID,
		"BENCH_BARE_SECRET="+fakewechat.DevMiniProgramSecret)
	// In the services' columns: the front where the gateway is, the login
	// worker where identity is, the signer where session is.
	for _, p := range [][2]string{{"session", "bare-sign"}, {"identity", "bare-login"}, {"gateway", "bare-gateway"}} {
		if s.children[p[0]], err = start(s.dir, p[0], env, self, p[1]); err != nil {
			return nil, err
		}
	}
	// Ready when a login goes through all three.
	if err := waitFor(ctx, 30*time.Second, "the bare chain", func() bool {
		if s.alive() != nil {
			return false
		}
		resp, err := http.Post(s.base+"/login", "application/json", strings.NewReader(`{"code":"load:obench_probe"}`))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}); err != nil {
		if aerr := s.alive(); aerr != nil {
			return nil, aerr
		}
		return nil, err
	}
	return s, nil
}

// dbName is the database a URL names.
func dbName(dsn string) string {
	i := strings.LastIndexByte(dsn, '/')
	name := dsn[i+1:]
	if j := strings.IndexByte(name, '?'); j >= 0 {
		name = name[:j]
	}
	return name
}
