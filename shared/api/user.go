package api

import (
	"time"

	"github.com/google/uuid"
)

// ValidID reports whether s is an id as wxlogin makes them (users,
// identities, refresh families, tokens): a UUID in its canonical form,
// lower case with hyphens. uuid.Parse alone also takes braces, urn:uuid:
// and upper case, which Postgres, KV keys and string comparisons would
// each read their own way.
func ValidID(s string) bool {
	u, err := uuid.Parse(s)
	return err == nil && u.String() == s
}

// User is the public view of an account: what the HTTP API returns and what
// identity sends to the gateway. It never holds a secret (no session_key, no
// password hash).
type User struct {
	ID          string    `json:"id"`
	Username    string    `json:"username"`
	Nickname    string    `json:"nickname"`
	AvatarURL   string    `json:"avatar_url"`
	Gender      int       `json:"gender"`
	Language    string    `json:"language"`
	City        string    `json:"city"`
	Province    string    `json:"province"`
	Country     string    `json:"country"`
	PhoneNumber string    `json:"phone_number"`
	Email       string    `json:"email"`
	DateOfBirth string    `json:"date_of_birth,omitempty"` // YYYY-MM-DD
	Description string    `json:"description,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	// Shown to admins and to the user itself; omitted when false / nil.
	IsAdmin    bool       `json:"is_admin,omitempty"`
	DisabledAt *time.Time `json:"disabled_at,omitempty"`
	// LastLoginAt is the latest login, to within an hour for returning
	// WeChat logins (they write the users row at most hourly); omitted
	// before the first.
	LastLoginAt *time.Time `json:"last_login_at,omitempty"`
	Identities  []Identity `json:"identities,omitempty"`
}

// Identity is the public view of a linked WeChat identity: no openid secrets,
// no session_key.
type Identity struct {
	ID       string `json:"id"`
	Provider string `json:"provider"`
	Kind     string `json:"kind"`
	AppID    string `json:"appid"`
	// OpenID and UnionID are WeChat's ids of the person; admin answers
	// only (they let an operator find a user from WeChat's side).
	OpenID    string    `json:"openid,omitempty"`
	UnionID   string    `json:"unionid,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// Identity kinds, also the login kinds of tokens and events.
const (
	KindMiniProgram     = "miniprogram"
	KindWeb             = "web"
	KindOfficialAccount = "officialaccount" // in-WeChat browser and follow-QR logins
	KindApp             = "app"             // a native mobile app with the WeChat SDK
	KindPassword        = "password"
)
