package gatewaysvc_test

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/identity"
	"github.com/wxlogin/wxlogin/shared/poll"
)

// leaveMidCall sends a request and hangs up once started receives (the
// backend call is under way), then waits until the gateway has finished the
// request (its access log line), and returns the log lines of the request.
func leaveMidCall(t *testing.T, e *env, method, url, contentType, body string, started <-chan struct{}) []string {
	t.Helper()
	rid := "gone-" + randomToken(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
		if err != nil {
			return
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		req.Header.Set("X-Request-ID", rid)
		if res, err := http.DefaultClient.Do(req); err == nil {
			res.Body.Close()
		}
	}()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the backend call did not start")
	}
	cancel()
	<-done
	var lines []string
	poll.Until(t, 10*time.Second, "the gateway to finish the abandoned request", func() bool {
		lines = lines[:0]
		finished := false
		for _, l := range strings.Split(e.logs.String(), "\n") {
			if strings.Contains(l, rid) {
				lines = append(lines, l)
				finished = finished || strings.Contains(l, `"msg":"http request"`)
			}
		}
		return finished
	})
	return lines
}

// TestClientGoneMidCall: a client that hangs up while the gateway waits on a
// backend is no failure of ours: no ERROR (or 5xx WARN) line, no 5xx in the
// request metrics, no failed login counted.
func TestClientGoneMidCall(t *testing.T) {
	e := newEnv(t)
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	id, err := micro.AddService(e.nc, micro.Config{Name: identity.Service, Version: "0.0.1", QueueGroup: identity.Service})
	must(t, err)
	must(t, id.AddEndpoint("password_login", endpoint(func(context.Context, identity.PasswordLoginRequest) (identity.LoginResult, error) {
		started <- struct{}{}
		select {
		case <-release:
		case <-time.After(30 * time.Second):
		}
		return identity.LoginResult{}, api.Errorf(api.CodeInvalidCredentials, "wrong username or password")
	}), micro.WithEndpointSubject(identity.SubjectPasswordLogin)))
	e.stopper(id)
	t.Cleanup(func() { close(release) }) // before the stub stops
	e.startSession()
	base := e.gateway(nil)
	poll.Until(t, 10*time.Second, "gateway ready", func() bool { return get(t, base+"/readyz", nil).status == http.StatusOK })

	lines := leaveMidCall(t, e, http.MethodPost, base+"/api/v1/auth/password/login", "application/json",
		`{"username":"alice","password":"correct horse"}`, started)
	for _, l := range lines {
		if strings.Contains(l, `"level":"ERROR"`) || strings.Contains(l, `"level":"WARN"`) {
			t.Errorf("logged as a failure: %s", l)
		}
	}
	if !strings.Contains(strings.Join(lines, "\n"), "client went away") {
		t.Errorf("no debug line about the client leaving: %q", lines)
	}
	metrics := get(t, e.ops+"/metrics", nil).raw
	if m := regexp.MustCompile(`http_requests_total\{[^}]*route="/api/v1/auth/password/login"[^}]*status="5\d\d"\}`).FindString(metrics); m != "" {
		t.Errorf("counted as a server error: %s", m)
	}
	if m := regexp.MustCompile(`wxlogin_logins_total\{kind="password"[^}]*\}`).FindString(metrics); m != "" {
		t.Errorf("counted as a login attempt: %s", m)
	}
}
