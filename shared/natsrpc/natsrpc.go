// Package natsrpc is the request/reply plumbing under the typed clients of
// shared/api: JSON bodies, errors in the nats micro error headers carrying the
// contract codes, request ids in a header, deadlines on every call, and a
// bounded worker pool for micro endpoints (which otherwise serve one request at
// a time per subscription).
package natsrpc

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/wxlogin/wxlogin/shared/api"
)

// DefaultTimeout bounds a call whose context has no deadline, so a dead
// service turns into service_unavailable instead of a hang.
const DefaultTimeout = 2 * time.Second

// HeaderDeadline carries the caller's deadline (unix milliseconds) to the
// service, which then stops working on the request a little before the caller
// stops waiting for it (clocks are assumed roughly in sync).
const HeaderDeadline = "Wxlogin-Deadline"

// HeaderNotRun marks an error reply to a request the service refused
// without running any of it (it is stopping): the caller may send it again.
const HeaderNotRun = "Wxlogin-Not-Run"

// maxAttempts bounds how often Call sends a request refused with
// HeaderNotRun: several replicas stopping at once (a rolling restart) is
// not an endless chain.
const maxAttempts = 3

// errCancelled is a call the caller itself abandoned (e.g. the HTTP client
// went away). It is service_unavailable, the code the gateway does not log as
// a server error; nobody reads the answer anyway.
var errCancelled = &api.Error{Code: api.CodeServiceUnavailable, Message: "request cancelled"}

type ctxKey struct{}

// WithRequestID returns ctx carrying the request id sent along with every call.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// RequestID returns the request id carried by ctx, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}

// Observer is told how long each call took, for latency metrics by subject.
type Observer func(subject string, took time.Duration, err error)

// Client is a NATS connection with an optional Observer: what the typed
// clients of shared/api call through.
type Client struct {
	nc      *nats.Conn
	observe Observer
}

// NewClient returns a client over nc; observe may be nil.
func NewClient(nc *nats.Conn, observe Observer) *Client {
	return &Client{nc: nc, observe: observe}
}

// Do is Call for a typed client method: it decodes the answer into a new
// Res and returns it.
func Do[Res any](ctx context.Context, c *Client, subject string, req any) (Res, error) {
	var res Res
	err := c.Call(ctx, subject, req, &res)
	return res, err
}

// Call is Call on the client's connection, observed.
func (c *Client) Call(ctx context.Context, subject string, req, resp any) error {
	if c.observe == nil {
		return Call(ctx, c.nc, subject, req, resp)
	}
	start := time.Now()
	err := Call(ctx, c.nc, subject, req, resp)
	c.observe(subject, time.Since(start), err)
	return err
}

// Call sends req as JSON to subject and decodes the reply into resp (which may
// be nil). Errors are *api.Error: the service's own code, or
// service_unavailable when nobody answers in time, or (message "request
// cancelled") when ctx was cancelled. The deadline of ctx (DefaultTimeout if
// none) travels in HeaderDeadline.
func Call(ctx context.Context, nc *nats.Conn, subject string, req, resp any) error {
	data, err := json.Marshal(req)
	if err != nil {
		return err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	msg := nats.NewMsg(subject)
	msg.Data = data
	deadline, _ := ctx.Deadline()
	msg.Header.Set(HeaderDeadline, strconv.FormatInt(deadline.UnixMilli(), 10))
	if id := RequestID(ctx); id != "" {
		msg.Header.Set(api.HeaderRequestID, id)
	}
	// A replica that is stopping refuses what it had not started (marked
	// HeaderNotRun); by then its subscription is gone, so the same request
	// sent again reaches another replica. Nothing ran, so resending is safe.
	var reply *nats.Msg
	for attempt := 1; ; attempt++ {
		reply, err = nc.RequestMsgWithContext(ctx, msg)
		if err != nil || reply.Header.Get(HeaderNotRun) == "" || attempt == maxAttempts {
			break
		}
	}
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return errCancelled
		}
		if unavailable(err) {
			return &api.Error{Code: api.CodeServiceUnavailable, Message: "a backend service is not answering; try again shortly"}
		}
		return err
	}
	if code := reply.Header.Get(micro.ErrorCodeHeader); code != "" {
		e := &api.Error{Code: api.Code(code), Message: reply.Header.Get(micro.ErrorHeader)}
		if len(reply.Data) > 0 {
			// Best effort: the data of an error is optional.
			_ = json.Unmarshal(reply.Data, &e.Data)
		}
		return e
	}
	if resp == nil {
		return nil
	}
	if err := json.Unmarshal(reply.Data, resp); err != nil {
		return &api.Error{Code: api.CodeInternal, Message: "malformed reply from " + subject}
	}
	return nil
}

// unavailable tells the errors that mean "nobody can answer right now":
// no responders, timeouts, and every state of a connection that is not up
// (before the first connect, headers are "not supported" yet).
func unavailable(err error) bool {
	for _, e := range []error{
		nats.ErrNoResponders, context.DeadlineExceeded, nats.ErrTimeout,
		nats.ErrConnectionClosed, nats.ErrDisconnected, nats.ErrConnectionReconnecting,
		nats.ErrConnectionDraining, nats.ErrReconnectBufExceeded, nats.ErrHeadersNotSupported,
		nats.ErrNoServers, nats.ErrInvalidConnection,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
