package natsrpc

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/wxlogin/wxlogin/shared/api"
)

// Pool runs micro endpoint handlers on at most size goroutines. While all are
// busy the micro callback blocks, which leaves further requests queued in the
// subscription (backpressure) rather than spawning without bound.
type Pool struct {
	sem     chan struct{}
	timeout time.Duration
	log     *slog.Logger
	wg      sync.WaitGroup
}

// NewPool returns a pool of size workers; each request gets timeout to finish.
func NewPool(size int, timeout time.Duration, log *slog.Logger) *Pool {
	return &Pool{sem: make(chan struct{}, size), timeout: timeout, log: log}
}

// Wait blocks until every handler started so far has responded.
func (p *Pool) Wait() { p.wg.Wait() }

// Endpoint adapts fn to a micro handler: it decodes the JSON request, runs fn
// on the pool with a deadline and the caller's request id, and replies with
// the JSON response or the error's contract code.
func Endpoint[Req, Resp any](p *Pool, fn func(ctx context.Context, req Req) (Resp, error)) micro.Handler {
	return micro.HandlerFunc(func(r micro.Request) {
		p.sem <- struct{}{}
		p.wg.Add(1)
		go func() {
			defer func() { <-p.sem; p.wg.Done() }()
			rid := r.Headers().Get(api.HeaderRequestID)
			ctx, cancel := context.WithTimeout(WithRequestID(context.Background(), rid), p.timeout)
			defer cancel()
			var req Req
			if err := json.Unmarshal(r.Data(), &req); err != nil {
				p.respondError(r, rid, api.Errorf(api.CodeInvalidRequest, "malformed request"))
				return
			}
			resp, err := fn(ctx, req)
			if err != nil {
				p.respondError(r, rid, err)
				return
			}
			if err := r.RespondJSON(resp); err != nil {
				p.log.Warn("respond failed", "subject", r.Subject(), "request_id", rid, "error", err)
			}
		}()
	})
}

func (p *Pool) respondError(r micro.Request, rid string, err error) {
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
	if rerr := r.Respond(data, micro.WithHeaders(hdr)); rerr != nil {
		p.log.Warn("respond failed", "subject", r.Subject(), "request_id", rid, "error", rerr)
	}
}
