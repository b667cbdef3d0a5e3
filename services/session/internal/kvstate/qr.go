package kvstate

import (
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/shared/api/session"
)

// Tickets stores QR login tickets in the QR bucket, keyed by ticket
// (Create, Get, Update, Consume, Room).
type Tickets struct{ records[session.QRRecord] }

// NewTickets returns a store over the QR bucket.
func NewTickets(kv jetstream.KeyValue) *Tickets {
	return &Tickets{records[session.QRRecord]{kv: kv, what: "qr ticket"}}
}
