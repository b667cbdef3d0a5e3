package natsrpc

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/wxlogin/wxlogin/shared/api"
)

// Pool runs micro endpoint handlers on at most size goroutines. While all are
// busy the micro callback blocks, which leaves further requests queued in the
// subscription (backpressure) rather than spawning without bound.
//
// Stopping: svc.Stop(), then Close, then Wait. micro's Stop drains the
// subscriptions without waiting, so a buffered request can still reach
// Endpoint afterwards; once the pool is closed it is answered
// service_unavailable at once, marked HeaderNotRun so that Call sends it
// to another replica, instead of starting a handler Wait no longer waits
// for.
type Pool struct {
	sem     chan struct{}
	timeout time.Duration
	log     *slog.Logger

	mu     sync.Mutex // orders wg.Add against Close, so Wait never races an Add
	closed bool
	wg     sync.WaitGroup
}

// MaxWorkers bounds WXLOGIN_WORKERS.
const MaxWorkers = 10000

// Workers is the size of a service's pool: configured (WXLOGIN_WORKERS),
// or 0 for 32 per CPU (GOMAXPROCS). Handlers mostly wait (on WeChat, KV,
// Postgres), so a CPU has room for many; the bound is backpressure.
func Workers(configured int) int {
	if configured > 0 {
		return configured
	}
	return 32 * runtime.GOMAXPROCS(0)
}

// NewPool returns a pool of size workers; each request gets timeout to
// finish (less if the caller's deadline is sooner).
func NewPool(size int, timeout time.Duration, log *slog.Logger) *Pool {
	return &Pool{sem: make(chan struct{}, size), timeout: timeout, log: log}
}

// deadlineMargin is taken off the caller's deadline, so a handler that runs
// out of time still gets its answer back before the caller gives up.
const deadlineMargin = 50 * time.Millisecond

var errStopping = &api.Error{Code: api.CodeServiceUnavailable, Message: "the service is stopping; try again"}

// Close makes the pool refuse new requests (service_unavailable, no handler
// run). It is idempotent.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
}

// Wait closes the pool (if Close was not called yet) and blocks until every
// handler it accepted has responded.
func (p *Pool) Wait() {
	p.Close()
	p.wg.Wait()
}

// accept counts a request in, unless the pool is closed.
func (p *Pool) accept() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.wg.Add(1)
	return true
}

// Endpoint adapts fn to a micro handler: it decodes the JSON request, runs fn
// on the pool with a deadline (the pool's timeout, or the caller's deadline
// less a margin if sooner) and the caller's request id, and replies with the
// JSON response or the error's contract code.
func Endpoint[Req, Resp any](p *Pool, fn func(ctx context.Context, req Req) (Resp, error)) micro.Handler {
	return micro.HandlerFunc(func(r micro.Request) {
		if !isRequest(r.Reply()) {
			p.log.Warn("dropped a message that is no request", "subject", r.Subject())
			return
		}
		rid := r.Headers().Get(api.HeaderRequestID)
		if !p.accept() {
			p.respondError(r, rid, errStopping, HeaderNotRun)
			return
		}
		p.sem <- struct{}{}
		go func() {
			defer func() { <-p.sem; p.wg.Done() }()
			deadline := time.Now().Add(p.timeout)
			if d, ok := callerDeadline(r.Headers()); ok && d.Add(-deadlineMargin).Before(deadline) {
				deadline = d.Add(-deadlineMargin)
			}
			if time.Until(deadline) <= 0 {
				// The caller has given up (or is about to): do no work for it.
				p.respondError(r, rid, &api.Error{Code: api.CodeServiceUnavailable, Message: "the caller's deadline has passed"})
				return
			}
			ctx, cancel := context.WithDeadline(WithRequestID(context.Background(), rid), deadline)
			defer cancel()
			var req Req
			if err := json.Unmarshal(r.Data(), &req); err != nil {
				p.respondError(r, rid, api.Errorf(api.CodeInvalidRequest, "malformed request"))
				return
			}
			resp, err := fn(ctx, req)
			if err != nil {
				var e *api.Error
				if !errors.As(err, &e) && errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
					// Out of time is not a bug: the caller sees
					// service_unavailable, as if nobody had answered.
					p.log.Warn("request timed out", "subject", r.Subject(), "request_id", rid, "error", err)
					err = &api.Error{Code: api.CodeServiceUnavailable, Message: "the request timed out; try again"}
				}
				if storeFull(err) {
					// A KV bucket at its byte cap refuses new keys: load
					// to shed, not a bug (existing keys still update).
					p.log.Warn("a JetStream store is full", "subject", r.Subject(), "request_id", rid, "error", err)
					err = &api.Error{Code: api.CodeServiceUnavailable, Message: "too much is in progress right now; try again shortly"}
				}
				p.respondError(r, rid, err)
				return
			}
			if err := r.RespondJSON(resp); err != nil {
				p.log.Warn("respond failed", "subject", r.Subject(), "request_id", rid, "error", err)
			}
		}()
	})
}

// isRequest reports whether reply is a requester's reply subject. A message
// JetStream delivers is none: a push consumer's deliver subject may name any
// subject (the user events could aim its consumer of the event stream at
// wxlogin.session.issue), and its reply subject is an ack ($JS.ACK...).
func isRequest(reply string) bool {
	return reply != "" && !strings.HasPrefix(reply, "$JS.")
}

// callerDeadline reads the deadline Call sends in HeaderDeadline.
func callerDeadline(h micro.Headers) (time.Time, bool) {
	ms, err := strconv.ParseInt(h.Get(HeaderDeadline), 10, 64)
	if err != nil || ms <= 0 {
		return time.Time{}, false
	}
	return time.UnixMilli(ms), true
}

// storeFull reports whether err is JetStream refusing a write because the
// stream (a KV bucket) is at its limits: "maximum bytes exceeded" and the
// other store failures of its error code 10077.
func storeFull(err error) bool {
	var ae *jetstream.APIError
	return errors.As(err, &ae) && ae.ErrorCode == jsErrCodeStoreFailed
}

// jsErrCodeStoreFailed is JetStream's JSStreamStoreFailedF (nats.go names
// no constant for it).
const jsErrCodeStoreFailed jetstream.ErrorCode = 10077

// respondError answers err's contract code; flags are headers set to "1"
// (HeaderNotRun).
func (p *Pool) respondError(r micro.Request, rid string, err error, flags ...string) {
	var e *api.Error
	if !errors.As(err, &e) {
		// Unexpected errors are logged here, once, and never shown to clients.
		p.log.Error("request failed", "subject", r.Subject(), "request_id", rid, "error", err)
		e = &api.Error{Code: api.CodeInternal, Message: "internal error"}
	}
	var data []byte
	if len(e.Data) > 0 {
		data, _ = json.Marshal(e.Data)
	}
	msg := e.Message
	if msg == "" {
		msg = string(e.Code) // the error header must not be empty
	}
	// Not r.Error: it records the error in the request, which micro reads
	// when the (already returned) handler callback ends: a data race once the
	// reply comes from a pool goroutine. The headers are the same.
	hdr := micro.Headers{micro.ErrorHeader: {msg}, micro.ErrorCodeHeader: {string(e.Code)}}
	for _, f := range flags {
		hdr[f] = []string{"1"}
	}
	if rerr := r.Respond(data, micro.WithHeaders(hdr)); rerr != nil {
		p.log.Warn("respond failed", "subject", r.Subject(), "request_id", rid, "error", rerr)
	}
}
