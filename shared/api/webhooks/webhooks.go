// Package webhooks is the NATS side of services/webhooks: the names of its
// durable consumers on the event stream and of its dead-letter stream, and
// the headers of a dead letter. shared/natsauth grants the NATS user events
// exactly these.
package webhooks

// ConsumerPrefix starts the name of every durable consumer the webhooks
// service keeps on WXLOGIN_EVENTS: one per endpoint, ConsumerPrefix + the
// endpoint's name.
const ConsumerPrefix = "webhooks_"

// The dead-letter stream: an event an endpoint did not take within
// WXLOGIN_WEBHOOKS_MAX_AGE is parked on DeadSubjectPrefix + the endpoint's
// name. A work queue: `webhooks replay` acknowledges (and so deletes) each
// dead letter it delivered.
const (
	DeadStream         = "WXLOGIN_WEBHOOKS_DEAD"
	DeadSubjectPrefix  = "wxlogin.webhooks.dead."
	DeadStreamSubjects = DeadSubjectPrefix + ">"
)

// Headers of a dead letter; its body is the event as the stream held it.
const (
	HeaderEndpoint = "Wxlogin-Webhook-Endpoint" // the endpoint's name
	HeaderError    = "Wxlogin-Webhook-Error"    // why the last attempt failed, e.g. "HTTP 500"
	HeaderAttempts = "Wxlogin-Webhook-Attempts" // deliveries tried
	HeaderSubject  = "Wxlogin-Event-Subject"    // the event's subject on WXLOGIN_EVENTS
	HeaderEventSeq = "Wxlogin-Event-Seq"        // its sequence there
	HeaderStoredAt = "Wxlogin-Event-Stored-At"  // when the stream stored it (RFC 3339)
	// HeaderMAC authenticates the dead letter as the service's own (an
	// HMAC under the endpoint's secret): replay delivers, signed, nothing
	// another holder of the events user wrote.
	HeaderMAC = "Wxlogin-Webhook-Mac"
)
