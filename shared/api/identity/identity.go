// Package identity is the NATS contract of the identity service: subjects,
// messages and a typed client.
package identity

import (
	"context"

	"github.com/nats-io/nats.go"

	"github.com/wxlogin/wxlogin/shared/api"
	"github.com/wxlogin/wxlogin/shared/natsrpc"
)

// Service is the micro service name (`nats micro ls`) and queue group.
const Service = "identity"

// Subjects, all under wxlogin.identity.>.
const (
	SubjectMiniProgramLogin = "wxlogin.identity.miniprogram.login"
	SubjectWebResolve       = "wxlogin.identity.web.resolve"
	SubjectPasswordLogin    = "wxlogin.identity.password.login"
	SubjectRegister         = "wxlogin.identity.register"
	SubjectBind             = "wxlogin.identity.bind"
	SubjectUserGet          = "wxlogin.identity.user.get"
	SubjectUserUpdate       = "wxlogin.identity.user.update"
	SubjectUserPhone        = "wxlogin.identity.user.phone"
	SubjectAdminUsersSearch = "wxlogin.identity.admin.users.search"
	// Issue 11: the official account's web authorization and native apps.
	SubjectOAResolve = "wxlogin.identity.oa.resolve"
	SubjectAppLogin  = "wxlogin.identity.app.login"
)

// Profile is what a client may tell us about the user. Nil fields are not
// sent and leave the stored value alone.
type Profile struct {
	Nickname  *string `json:"nickname,omitempty"`
	AvatarURL *string `json:"avatar_url,omitempty"`
	Gender    *int    `json:"gender,omitempty"`
	Language  *string `json:"language,omitempty"`
	City      *string `json:"city,omitempty"`
	Province  *string `json:"province,omitempty"`
	Country   *string `json:"country,omitempty"`
}

// MiniProgramLoginRequest asks identity to exchange a wx.login code and
// resolve it to a user. App names a configured app; "" is the default one.
type MiniProgramLoginRequest struct {
	App     string   `json:"app,omitempty"`
	Code    string   `json:"code"`
	Profile *Profile `json:"profile,omitempty"`
}

// LoginResult is a resolved, committed user.
type LoginResult struct {
	User      api.User `json:"user"`
	IsNewUser bool     `json:"is_new_user"`
	Kind      string   `json:"kind"`
	AppID     string   `json:"appid,omitempty"`
}

// UserGetRequest asks for a user with its identities.
type UserGetRequest struct {
	UserID string `json:"user_id"`
}

// Client calls the identity service.
type Client struct{ rpc *natsrpc.Client }

// NewClient returns a client over nc.
func NewClient(nc *nats.Conn) *Client { return &Client{rpc: natsrpc.NewClient(nc, nil)} }

// NewObservedClient returns a client that reports each call's latency to observe.
func NewObservedClient(nc *nats.Conn, observe natsrpc.Observer) *Client {
	return &Client{rpc: natsrpc.NewClient(nc, observe)}
}

// MiniProgramLogin exchanges a mini-program code and returns the user.
func (c *Client) MiniProgramLogin(ctx context.Context, req MiniProgramLoginRequest) (LoginResult, error) {
	return natsrpc.Do[LoginResult](ctx, c.rpc, SubjectMiniProgramLogin, req)
}

// GetUser returns the user with its identities; api.CodeNotFound if unknown.
func (c *Client) GetUser(ctx context.Context, userID string) (api.User, error) {
	return natsrpc.Do[api.User](ctx, c.rpc, SubjectUserGet, UserGetRequest{UserID: userID})
}
