package gatewaysvc_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/wxlogin/wxlogin/services/gateway/gatewaysvc"
	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/api/identity"
	"github.com/wxlogin/wxlogin/shared/api/session"
	"github.com/wxlogin/wxlogin/shared/poll"
)

// accountsStub answers the identity account/admin subjects and session's
// issue, jwks and revoke, records each request, and fails a subject on
// demand.
type accountsStub struct {
	mu    sync.Mutex
	e     *env
	fail  map[string]*api.Error
	calls map[string][]any
}

func newAccountsStub(e *env) *accountsStub {
	return &accountsStub{e: e, fail: map[string]*api.Error{}, calls: map[string][]any{}}
}

func (s *accountsStub) setFail(subject string, err *api.Error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		delete(s.fail, subject)
		return
	}
	s.fail[subject] = err
}

// record notes a request and returns the error set for its subject.
func (s *accountsStub) record(subject string, req any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[subject] = append(s.calls[subject], req)
	if f := s.fail[subject]; f != nil {
		return f
	}
	return nil
}

func (s *accountsStub) count(subject string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls[subject])
}

// last returns the last request on subject as T.
func last[T any](t *testing.T, s *accountsStub, subject string) T {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	calls := s.calls[subject]
	if len(calls) == 0 {
		t.Fatalf("no request on %s", subject)
	}
	v, ok := calls[len(calls)-1].(T)
	if !ok {
		t.Fatalf("request on %s is %T", subject, calls[len(calls)-1])
	}
	return v
}

const otherUserID = "6f1c3f0e-8d7b-4c1e-a2b3-9d8e7f6a5b4c"

func accountUser(id, username string) api.User {
	return api.User{ID: id, Username: username, Nickname: "Ann", CreatedAt: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		Identities: []api.Identity{{ID: "1d5a3e1c-2b4f-4a6d-8e9f-0a1b2c3d4e5f", Provider: "wechat", Kind: api.KindMiniProgram,
			AppID: testAppID, CreatedAt: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}}}
}

// stub builds a micro handler that records the request and answers fn's
// result, or the subject's error.
func stub[Req, Resp any](s *accountsStub, subject string, fn func(Req) Resp) micro.Handler {
	return endpoint(func(_ context.Context, req Req) (Resp, error) {
		if err := s.record(subject, req); err != nil {
			var zero Resp
			return zero, err
		}
		return fn(req), nil
	})
}

// startAccounts runs identity and session stubs for the account and admin
// routes (the issue and jwks of e.se, so tokens verify).
func (s *accountsStub) start() {
	e := s.e
	e.t.Helper()
	id, err := micro.AddService(e.nc, micro.Config{Name: identity.Service, Version: "0.0.1", QueueGroup: identity.Service})
	must(e.t, err)
	add := func(svc micro.Service, name, subject string, h micro.Handler) {
		must(e.t, svc.AddEndpoint(name, h, micro.WithEndpointSubject(subject)))
	}
	login := func(newUser bool) func(username string) identity.LoginResult {
		return func(username string) identity.LoginResult {
			return identity.LoginResult{User: accountUser(testUserID, username), IsNewUser: newUser, Kind: api.KindPassword}
		}
	}
	add(id, "miniprogram_login", identity.SubjectMiniProgramLogin, stub(s, identity.SubjectMiniProgramLogin, func(identity.MiniProgramLoginRequest) identity.LoginResult {
		return identity.LoginResult{User: accountUser(testUserID, "wx_0123456789ab"), Kind: api.KindMiniProgram, AppID: testAppID}
	}))
	add(id, "register", identity.SubjectRegister, stub(s, identity.SubjectRegister, func(r identity.RegisterRequest) identity.LoginResult { return login(true)(r.Username) }))
	add(id, "password_login", identity.SubjectPasswordLogin, stub(s, identity.SubjectPasswordLogin, func(r identity.PasswordLoginRequest) identity.LoginResult {
		return login(false)(r.Username)
	}))
	add(id, "bind", identity.SubjectBind, stub(s, identity.SubjectBind, func(r identity.BindRequest) identity.LoginResult { return login(false)(r.Username) }))
	add(id, "user_update", identity.SubjectUserUpdate, stub(s, identity.SubjectUserUpdate, func(r identity.UserUpdateRequest) api.User {
		u := accountUser(r.UserID, "ann")
		if r.Nickname != nil {
			u.Nickname = *r.Nickname
		}
		if r.Email != nil {
			u.Email = *r.Email
		}
		return u
	}))
	add(id, "user_phone", identity.SubjectUserPhone, stub(s, identity.SubjectUserPhone, func(r identity.UserPhoneRequest) api.User {
		u := accountUser(r.UserID, "ann")
		u.PhoneNumber = "+8613800138000"
		return u
	}))
	add(id, "identity_delete", identity.SubjectIdentityDelete, stub(s, identity.SubjectIdentityDelete, func(identity.IdentityDeleteRequest) identity.Empty {
		return identity.Empty{}
	}))
	add(id, "admin_search", identity.SubjectAdminUsersSearch, stub(s, identity.SubjectAdminUsersSearch, func(r identity.AdminSearchRequest) identity.AdminSearchResult {
		if r.Q == "nobody" {
			return identity.AdminSearchResult{Total: 0} // items null on the wire
		}
		return identity.AdminSearchResult{Items: []api.User{accountUser(testUserID, "ann"), accountUser(otherUserID, "bob")}, Total: 42}
	}))
	add(id, "admin_get", identity.SubjectAdminUserGet, stub(s, identity.SubjectAdminUserGet, func(r identity.AdminUserRequest) api.User {
		return accountUser(r.UserID, "bob")
	}))
	add(id, "admin_disabled", identity.SubjectAdminUserDisabled, stub(s, identity.SubjectAdminUserDisabled, func(r identity.AdminDisableRequest) api.User {
		u := accountUser(r.UserID, "bob")
		if r.Disabled {
			at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			u.DisabledAt = &at
		}
		return u
	}))
	add(id, "admin_audit_record", identity.SubjectAdminAuditRecord, stub(s, identity.SubjectAdminAuditRecord, func(identity.AdminAuditRecordRequest) identity.AdminAuditRecordResult {
		return identity.AdminAuditRecordResult{}
	}))
	e.stopper(id)

	se, err := micro.AddService(e.nc, micro.Config{Name: session.Service, Version: "0.0.1", QueueGroup: session.Service})
	must(e.t, err)
	add(se, "issue", session.SubjectIssue, endpoint(func(ctx context.Context, r session.IssueRequest) (session.Tokens, error) {
		if err := s.record(session.SubjectIssue, r); err != nil {
			return session.Tokens{}, err
		}
		return e.se.issue(ctx, r)
	}))
	add(se, "jwks", session.SubjectJWKS, endpoint(e.se.jwks))
	add(se, "revoke", session.SubjectRevoke, stub(s, session.SubjectRevoke, func(session.RevokeRequest) session.RevokeResponse {
		return session.RevokeResponse{}
	}))
	add(se, "list", session.SubjectList, stub(s, session.SubjectList, func(session.ListRequest) session.List {
		return session.List{}
	}))
	e.stopper(se)
}

// upAccounts starts the stubs and a gateway, with the KV buckets the
// gateway watches (session creates them in production), and waits until
// the gateway is ready.
func (e *env) upAccounts(mutate func(*gatewaysvc.Config)) (string, *accountsStub) {
	e.t.Helper()
	s := newAccountsStub(e)
	s.start()
	e.ensureBuckets()
	base := e.gateway(mutate)
	poll.Until(e.t, 10*time.Second, "gateway ready", func() bool {
		return get(e.t, base+"/readyz", nil).status == http.StatusOK
	})
	return base, s
}

// ensureBuckets creates the session-owned buckets the gateway reads, unless
// the test world already has them.
func (e *env) ensureBuckets() {
	e.t.Helper()
	js, err := jetstream.New(e.nc)
	must(e.t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, b := range []string{session.BucketRevoked, session.BucketQR} {
		if _, err := js.KeyValue(ctx, b); err == nil {
			continue
		} else if !errors.Is(err, jetstream.ErrBucketNotFound) {
			e.t.Fatal(err)
		}
		if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: b, TTL: time.Hour}); err != nil && !errors.Is(err, jetstream.ErrBucketExists) {
			e.t.Fatal(err)
		}
	}
}

// userToken is an access token for a fresh subject (the stub identity
// decides admin rights by failing or not).
func (e *env) userToken() (token, subject string) {
	subject = uuid.NewString()
	return e.se.token(subject, nil), subject
}
