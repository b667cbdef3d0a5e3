package session

import (
	"context"
	"github.com/wxlogin/wxlogin/shared/natsrpc"
	"time"
)

// SubjectList lists a user's live sessions (refresh families), for admins.
const SubjectList = "wxlogin.session.list"

// ListRequest names the user whose sessions to list.
type ListRequest struct {
	UserID string `json:"user_id"`
}

// Info is one live session. ID is the sid claim of its tokens; ClientID
// the client_id claim (the appid, or the default client). LastUsedAt is
// when it last got tokens (its login or its latest refresh): access tokens
// are verified locally and leave no trace.
type Info struct {
	ID         string    `json:"id"`
	Kind       string    `json:"kind"`
	ClientID   string    `json:"client_id"`
	CreatedAt  time.Time `json:"created_at"`
	LastUsedAt time.Time `json:"last_used_at"`
	ExpiresAt  time.Time `json:"expires_at"`
}

// List is a user's live sessions, newest first.
type List struct {
	Items []Info `json:"items"`
}

// List returns the user's live sessions.
func (c *Client) List(ctx context.Context, req ListRequest) (List, error) {
	return natsrpc.Do[List](ctx, c.rpc, SubjectList, req)
}
