package kvstate

import (
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/shared/api/session"
)

// OAStates stores the in-WeChat login's states in the OA bucket under
// "state.<state>" (Create, Get, Consume, Room).
type OAStates struct{ records[session.OAStateRecord] }

// NewOAStates returns a store over the OA bucket.
func NewOAStates(kv jetstream.KeyValue) *OAStates {
	return &OAStates{records[session.OAStateRecord]{kv: kv, prefix: "state.", what: "oa state"}}
}

// OACodes stores the one-time wxlogin_codes in the OA bucket under
// "code.<code>" (Create, Get, Consume).
type OACodes struct{ records[session.OACodeRecord] }

// NewOACodes returns a store over the OA bucket.
func NewOACodes(kv jetstream.KeyValue) *OACodes {
	return &OACodes{records[session.OACodeRecord]{kv: kv, prefix: "code.", what: "oa login code"}}
}
