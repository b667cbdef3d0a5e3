package identity

import (
	"time"

	"github.com/wxlogin/wxlogin/shared/api"
)

// The JetStream stream identity's outbox relay publishes user events to.
const (
	EventStream         = "WXLOGIN_EVENTS"
	EventStreamSubjects = "wxlogin.events.>"
)

// Event subjects.
const (
	SubjectUserCreated  = "wxlogin.events.user.created"
	SubjectUserBound    = "wxlogin.events.user.bound"
	SubjectUserLoggedIn = "wxlogin.events.user.logged_in"
	SubjectUserUpdated  = "wxlogin.events.user.updated"
)

// Event types, the "type" of an Event.
const (
	EventUserCreated  = "user.created"
	EventUserBound    = "user.bound"
	EventUserLoggedIn = "user.logged_in"
	EventUserUpdated  = "user.updated"
)

// Event is the body of a message on the event stream. ID is also the
// message's Nats-Msg-Id: the stream drops a redelivered duplicate within its
// duplicate window, and subscribers dedupe by it beyond that.
type Event struct {
	ID         string         `json:"id"`
	Type       string         `json:"type"`
	OccurredAt time.Time      `json:"occurred_at"`
	User       api.User       `json:"user"`
	Identity   *EventIdentity `json:"identity,omitempty"`
	// Kind is how the user logged in (api.KindMiniProgram, KindWeb,
	// KindOfficialAccount, KindApp, KindPassword); set on user.logged_in
	// events only.
	Kind string `json:"kind,omitempty"`
}

// EventIdentity is the identity an event is about (none of its secrets).
type EventIdentity struct {
	ID      string `json:"id"`
	Kind    string `json:"kind"`
	AppID   string `json:"appid"`
	OpenID  string `json:"openid"`
	UnionID string `json:"unionid,omitempty"`
}
