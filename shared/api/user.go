package api

import "time"

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
	Identities []Identity `json:"identities,omitempty"`
}

// Identity is the public view of a linked WeChat identity: no openid secrets,
// no session_key.
type Identity struct {
	ID        string    `json:"id"`
	Provider  string    `json:"provider"`
	Kind      string    `json:"kind"`
	AppID     string    `json:"appid"`
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
