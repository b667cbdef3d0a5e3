package webhooksvc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// userAgent names the sender to receivers.
const userAgent = "wxlogin-webhooks/1"

// Bounds on what an answer may make us do.
const (
	// maxAnswerBytes is how much of an answer's body is read (and thrown
	// away, so the connection can be reused); the rest is not.
	maxAnswerBytes = 64 << 10
	// maxRetryAfter caps a Retry-After (429, 503): a receiver cannot park
	// an event for longer than this at once.
	maxRetryAfter = time.Hour
)

// result is how one delivery attempt went.
type result struct {
	failure    string        // "" when delivered; else reasonStatus, reasonTimeout or reasonNetwork
	reason     string        // for logs and dead letters: "HTTP 500", "timeout after 10s", ...; never a body or URL
	gone       bool          // 410 Gone: the receiver does not want this event, ever
	retryAfter time.Duration // the receiver's Retry-After, if it gave one
	took       time.Duration
}

// newClient is the endpoint's HTTP client: its own connection pool sized to
// its concurrency, no redirects (a 3xx is an answer like any other, not a
// reason to send the signed event elsewhere), proxies from the environment.
func newClient(ep *Endpoint) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = ep.Concurrency
	return &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// post delivers body, the event id, to ep once: signed, as Standard
// Webhooks says, with the time of this attempt.
func post(ctx context.Context, client *http.Client, ep *Endpoint, id string, body []byte, now time.Time) result {
	ctx, cancel := context.WithTimeout(ctx, ep.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL.String(), bytes.NewReader(body))
	if err != nil {
		return result{failure: reasonNetwork, reason: "request: " + unwrapURLError(err).Error()}
	}
	ts := now.Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set(HeaderID, id)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(ep.keys, id, ts, body))
	began := time.Now()
	resp, err := client.Do(req)
	took := time.Since(began)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return result{failure: reasonTimeout, reason: fmt.Sprintf("timeout after %s", ep.Timeout), took: took}
		}
		return result{failure: reasonNetwork, reason: unwrapURLError(err).Error(), took: took}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswerBytes))
	resp.Body.Close()
	r := result{took: took}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		r.failure, r.reason = reasonStatus, fmt.Sprintf("HTTP %d", resp.StatusCode)
		r.gone = resp.StatusCode == http.StatusGone
		r.retryAfter = retryAfter(resp.Header.Get("Retry-After"), now)
	}
	return r
}

// unwrapURLError drops the *url.Error around err: it repeats the whole
// URL, whose query may hold a token.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// retryAfter reads a Retry-After header (seconds or an HTTP date), at most
// maxRetryAfter; 0 when absent or unreadable.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.Atoi(v); err == nil {
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), maxRetryAfter)
}
