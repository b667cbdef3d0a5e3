package identity

import (
	"context"
	"github.com/wxlogin/wxlogin/shared/natsrpc"

	"github.com/wxlogin/wxlogin/shared/api"
)

// Subjects added for accounts and admin (issue 4).
const (
	SubjectIdentityDelete    = "wxlogin.identity.user.identity.delete"
	SubjectAdminUserGet      = "wxlogin.identity.admin.users.get"
	SubjectAdminUserDisabled = "wxlogin.identity.admin.users.disabled"
)

// WeChatProof names a WeChat identity to attach to an account: either a
// bind_token from a wechat_not_bound answer (the identity is held
// server-side in KV wxlogin_bind) or a fresh mini-program code.
type WeChatProof struct {
	BindToken string `json:"bind_token,omitempty"`
	Code      string `json:"code,omitempty"`
	App       string `json:"app,omitempty"`
}

// PasswordLoginRequest logs in by username and password.
type PasswordLoginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
	ClientIP string `json:"client_ip,omitempty"` // for per-username failure limits and logs
}

// RegisterRequest creates a username/password account, optionally with a
// WeChat identity attached at once.
type RegisterRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
	WeChatProof
}

// BindRequest attaches a WeChat identity to an existing account, proven by
// its password.
type BindRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
	ClientIP string `json:"client_ip,omitempty"` // for per-username failure limits and logs
	WeChatProof
}

// UserUpdateRequest changes the caller's own profile. Nil fields stay.
type UserUpdateRequest struct {
	UserID string `json:"user_id"`
	Profile
	Email       *string `json:"email,omitempty"`
	DateOfBirth *string `json:"date_of_birth,omitempty"` // YYYY-MM-DD, "" clears
	Description *string `json:"description,omitempty"`
}

// UserPhoneRequest stores the phone number behind a getPhoneNumber code.
type UserPhoneRequest struct {
	UserID string `json:"user_id"`
	Code   string `json:"code"`
	App    string `json:"app,omitempty"`
}

// IdentityDeleteRequest unbinds one of the caller's identities; refused with
// api.CodeLastIdentity when it is the last way to log in.
type IdentityDeleteRequest struct {
	UserID     string `json:"user_id"`
	IdentityID string `json:"identity_id"`
}

// DataBindToken is the key of the bind token in the Data of a
// wechat_not_bound error: the token that Register or Bind accept as proof
// of the WeChat identity, valid for 10 minutes and once.
const DataBindToken = "bind_token"

// DataNickname and DataAvatarURL are the WeChat user's nickname and avatar in
// the Data of a wechat_not_bound error (when WeChat told them), so the person
// about to bind sees whose WeChat account it is.
const (
	DataNickname  = "nickname"
	DataAvatarURL = "avatar_url"
)

// DataRetryAfter is the key, in the Data of a rate_limited error, of the
// seconds after which the caller may try again.
const DataRetryAfter = "retry_after"

// Empty is the reply of requests that answer nothing but success.
type Empty struct{}

// Admin requests carry the caller's user id; identity checks it is an admin
// (api.CodeForbidden otherwise), so revoke-admin takes effect at once.

// AdminSearchRequest searches users by username, nickname, email, phone,
// openid or unionid. Page starts at 1. Sort is "-created_at" (default),
// "created_at", "-last_login_at" or "last_login_at".
type AdminSearchRequest struct {
	ActorID  string `json:"actor_id"`
	Q        string `json:"q"`
	Sort     string `json:"sort,omitempty"`
	Page     int    `json:"page"`
	PageSize int    `json:"page_size"`
}

// AdminSearchResult is one page of users. TotalCapped: more users match
// than Total (the count stops there).
type AdminSearchResult struct {
	Items       []api.User `json:"items"`
	Total       int        `json:"total"`
	TotalCapped bool       `json:"total_capped,omitempty"`
}

// AdminUserRequest names a user for an admin.
type AdminUserRequest struct {
	ActorID string `json:"actor_id"`
	UserID  string `json:"user_id"`
}

// AdminDisableRequest disables (or re-enables) a user. The gateway then asks
// session to revoke the user's sessions.
type AdminDisableRequest struct {
	ActorID  string `json:"actor_id"`
	UserID   string `json:"user_id"`
	Disabled bool   `json:"disabled"`
}

// WebResolveRequest exchanges a website (QR) login code.
type WebResolveRequest struct {
	App  string `json:"app,omitempty"`
	Code string `json:"code"`
}

// OAResolveRequest exchanges an official account's web-authorization code
// (the in-WeChat browser). Scope is the one the login asked WeChat for
// (session.ScopeUserInfo or session.ScopeBase): the profile is fetched only
// with snsapi_userinfo.
type OAResolveRequest struct {
	App   string `json:"app,omitempty"`
	Code  string `json:"code"`
	Scope string `json:"scope"`
}

// AppLoginRequest exchanges a native mobile app's WeChat SDK code.
type AppLoginRequest struct {
	App  string `json:"app,omitempty"`
	Code string `json:"code"`
}

// OAResolve exchanges an in-WeChat login code and returns the user;
// api.CodeSnapshotUser for a snapshot-page user (no account is touched).
func (c *Client) OAResolve(ctx context.Context, req OAResolveRequest) (LoginResult, error) {
	return natsrpc.Do[LoginResult](ctx, c.rpc, SubjectOAResolve, req)
}

// AppLogin exchanges a mobile app's code and returns the user.
func (c *Client) AppLogin(ctx context.Context, req AppLoginRequest) (LoginResult, error) {
	return natsrpc.Do[LoginResult](ctx, c.rpc, SubjectAppLogin, req)
}

// WebResolve exchanges a website login code and returns the user.
func (c *Client) WebResolve(ctx context.Context, req WebResolveRequest) (LoginResult, error) {
	return natsrpc.Do[LoginResult](ctx, c.rpc, SubjectWebResolve, req)
}

// PasswordLogin checks a username and password.
func (c *Client) PasswordLogin(ctx context.Context, req PasswordLoginRequest) (LoginResult, error) {
	return natsrpc.Do[LoginResult](ctx, c.rpc, SubjectPasswordLogin, req)
}

// Register creates an account.
func (c *Client) Register(ctx context.Context, req RegisterRequest) (LoginResult, error) {
	return natsrpc.Do[LoginResult](ctx, c.rpc, SubjectRegister, req)
}

// Bind attaches a WeChat identity to an account.
func (c *Client) Bind(ctx context.Context, req BindRequest) (LoginResult, error) {
	return natsrpc.Do[LoginResult](ctx, c.rpc, SubjectBind, req)
}

// UpdateUser changes a profile.
func (c *Client) UpdateUser(ctx context.Context, req UserUpdateRequest) (api.User, error) {
	return natsrpc.Do[api.User](ctx, c.rpc, SubjectUserUpdate, req)
}

// SetPhone stores the phone number behind a getPhoneNumber code.
func (c *Client) SetPhone(ctx context.Context, req UserPhoneRequest) (api.User, error) {
	return natsrpc.Do[api.User](ctx, c.rpc, SubjectUserPhone, req)
}

// DeleteIdentity unbinds an identity.
func (c *Client) DeleteIdentity(ctx context.Context, req IdentityDeleteRequest) error {
	_, err := natsrpc.Do[Empty](ctx, c.rpc, SubjectIdentityDelete, req)
	return err
}

// AdminSearch searches users.
func (c *Client) AdminSearch(ctx context.Context, req AdminSearchRequest) (AdminSearchResult, error) {
	return natsrpc.Do[AdminSearchResult](ctx, c.rpc, SubjectAdminUsersSearch, req)
}

// AdminGetUser returns any user with identities.
func (c *Client) AdminGetUser(ctx context.Context, req AdminUserRequest) (api.User, error) {
	return natsrpc.Do[api.User](ctx, c.rpc, SubjectAdminUserGet, req)
}

// AdminSetDisabled disables or enables a user.
func (c *Client) AdminSetDisabled(ctx context.Context, req AdminDisableRequest) (api.User, error) {
	return natsrpc.Do[api.User](ctx, c.rpc, SubjectAdminUserDisabled, req)
}
