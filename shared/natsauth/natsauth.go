// Package natsauth is the one Go copy of wxlogin's NATS users and what each
// may do. deploy/nats/auth.conf says the same for nats-server (a test in
// deploy/ keeps the two equal); the devstack and natstest run with these.
//
// Everything is an allow-list: a subject no list names is refused. The
// deny-lists repeat the most dangerous refusals so that a wildcard added
// to an allow-list later cannot silently open them.
package natsauth

import (
	"crypto/rand"
	"fmt"
	"strings"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/wxlogin/wxlogin/shared/api/identity"
	"github.com/wxlogin/wxlogin/shared/api/session"
	"github.com/wxlogin/wxlogin/shared/api/webhooks"
	"github.com/wxlogin/wxlogin/shared/natsconn"
)

// The users, one per service, plus events for the systems that read the
// event stream (services/webhooks among them).
const (
	Gateway  = natsconn.Gateway
	Identity = natsconn.Identity
	Session  = natsconn.Session
	Events   = natsconn.Events
)

// Users lists every user, in a fixed order.
func Users() []string { return []string{Gateway, Identity, Session, Events} }

// PasswordVar is the environment variable nats-server reads user's password
// from (WXLOGIN_NATS_GATEWAY_PASSWORD, ...).
func PasswordVar(user string) string {
	return "WXLOGIN_NATS_" + strings.ToUpper(user) + "_PASSWORD"
}

// identity's buckets (their configs live in identity's internal packages).
const (
	bucketWeChat    = "wxlogin_wechat"
	bucketFailLimit = "wxlogin_faillimit"
	bucketOAPushes  = "wxlogin_oa_pushes" // official-account pushes seen (retries handled once)
)

// Permissions returns what user may do; nil for an unknown user.
func Permissions(user string) *server.Permissions {
	switch user {
	case Gateway:
		return &server.Permissions{
			Publish: &server.SubjectPermission{
				Allow: concat(
					[]string{"wxlogin.identity.>", "wxlogin.session.>"},
					// Readiness: a micro PING answers while one instance is up.
					[]string{"$SRV.PING." + identity.Service, "$SRV.PING." + session.Service},
					// The views it serves from; the JWKS comes over wxlogin.session.jwks.
					kvRead(session.BucketQR), kvRead(session.BucketRevoked),
				),
				Deny: concat([]string{"$KV.>", "wxlogin.events.>"}, alwaysDenied()),
			},
			Subscribe: inboxOnly(Gateway),
		}
	case Identity:
		return &server.Permissions{
			Publish: &server.SubjectPermission{
				Allow: concat(
					// The outbox relay's JetStream publishes (acknowledged).
					[]string{identity.EventStreamSubjects},
					[]string{"$JS.API.INFO"}, // creating a KV bucket asks for the account's limits
					stream(identity.EventStream, "STREAM.CREATE", "STREAM.UPDATE", "STREAM.INFO"),
					kvOwn(session.BucketBind), kvOwn(bucketWeChat), kvOwn(bucketFailLimit), kvOwn(bucketOAPushes),
				),
				Deny: concat([]string{"wxlogin.identity.>", "wxlogin.session.>"}, alwaysDenied()),
			},
			Subscribe: responder(Identity, "wxlogin.identity.>"),
			Response:  allowResponses(),
		}
	case Session:
		return &server.Permissions{
			Publish: &server.SubjectPermission{
				Allow: concat(
					[]string{"$JS.API.INFO"},
					kvOwn(session.BucketKeys), kvOwn(session.BucketSessions),
					kvOwn(session.BucketQR), kvOwn(session.BucketRevoked),
					kvOwn(session.BucketOA),
				),
				Deny: concat([]string{"wxlogin.>"}, alwaysDenied()),
			},
			Subscribe: responder(Session, "wxlogin.session.>"),
			Response:  allowResponses(),
		}
	case Events:
		return &server.Permissions{
			Publish: &server.SubjectPermission{
				Allow: concat(
					stream(identity.EventStream, "STREAM.INFO", "STREAM.MSG.GET", "DIRECT.GET",
						"CONSUMER.CREATE", "CONSUMER.NAMES", "CONSUMER.LIST"),
					[]string{
						"$JS.API.DIRECT.GET." + identity.EventStream + ".>",
						"$JS.API.CONSUMER.CREATE." + identity.EventStream + ".>",
						"$JS.API.CONSUMER.DURABLE.CREATE." + identity.EventStream + ".*",
						"$JS.API.CONSUMER.INFO." + identity.EventStream + ".*",
						"$JS.API.CONSUMER.DELETE." + identity.EventStream + ".*",
						"$JS.API.CONSUMER.MSG.NEXT." + identity.EventStream + ".*",
						"$JS.ACK." + identity.EventStream + ".>",
						"$JS.FC." + identity.EventStream + ".>",
					},
					// services/webhooks' dead letters: it creates the stream,
					// parks events on it, and `webhooks replay` reads them
					// through a consumer whose acks delete them (a work queue:
					// no message delete, which stays denied).
					[]string{webhooks.DeadStreamSubjects},
					stream(webhooks.DeadStream, "STREAM.CREATE", "STREAM.UPDATE", "STREAM.INFO", "STREAM.MSG.GET", "DIRECT.GET", "CONSUMER.CREATE"),
					[]string{
						"$JS.API.DIRECT.GET." + webhooks.DeadStream + ".>",
						"$JS.API.CONSUMER.CREATE." + webhooks.DeadStream + ".>",
						"$JS.API.CONSUMER.INFO." + webhooks.DeadStream + ".*",
						"$JS.API.CONSUMER.DELETE." + webhooks.DeadStream + ".*",
						"$JS.API.CONSUMER.MSG.NEXT." + webhooks.DeadStream + ".*",
						"$JS.ACK." + webhooks.DeadStream + ".>",
					},
				),
				// Not wxlogin.> as a whole: the dead letters are below it.
				// No events, no requests to identity or session.
				Deny: concat([]string{"wxlogin.events.>", "wxlogin.identity.>", "wxlogin.session.>", "$KV.>", "$SRV.>"}, alwaysDenied()),
			},
			Subscribe: inboxOnly(Events),
		}
	}
	return nil
}

// alwaysDenied is what no wxlogin user may publish: the system account,
// and deleting or purging streams (a bucket is a stream), account and
// cluster administration.
func alwaysDenied() []string {
	return []string{
		"$SYS.>",
		"$JS.API.STREAM.DELETE.>", "$JS.API.STREAM.PURGE.>", "$JS.API.STREAM.MSG.DELETE.>",
		"$JS.API.STREAM.SNAPSHOT.>", "$JS.API.STREAM.RESTORE.>",
		"$JS.API.ACCOUNT.>", "$JS.API.META.>", "$JS.API.SERVER.>",
	}
}

// inboxOnly lets user subscribe to its own inbox and nothing else: replies
// (tokens among them) to another user's requests stay out of reach.
func inboxOnly(user string) *server.SubjectPermission {
	return &server.SubjectPermission{
		Allow: []string{natsconn.InboxPrefix(user) + ".>"},
		Deny:  []string{"$SYS.>", "_INBOX.>"},
	}
}

// responder is a nats micro service's subscriptions: its endpoints, the
// $SRV verbs (all services, and its own by name and id), its inbox.
func responder(user, endpoints string) *server.SubjectPermission {
	p := inboxOnly(user)
	p.Allow = append([]string{endpoints, "$SRV.*", "$SRV.*." + user, "$SRV.*." + user + ".*"}, p.Allow...)
	return p
}

// allowResponses lets a responder answer each request it got once, to the
// reply subject the requester chose, within nats-server's default window.
func allowResponses() *server.ResponsePermission {
	return &server.ResponsePermission{MaxMsgs: server.DEFAULT_ALLOW_RESPONSE_MAX_MSGS, Expires: server.DEFAULT_ALLOW_RESPONSE_EXPIRATION}
}

// stream is the JetStream API calls ops on stream name.
func stream(name string, ops ...string) []string {
	out := make([]string, len(ops))
	for i, op := range ops {
		out[i] = "$JS.API." + op + "." + name
	}
	return out
}

// kvRead is what reading and watching KV bucket b takes: its stream's info,
// gets (direct and by the stream), and the ordered consumers of a watch
// (created with or without a filter subject, their flow control answered,
// deleted when it stops).
func kvRead(b string) []string {
	s := "KV_" + b
	return concat(
		stream(s, "STREAM.INFO", "STREAM.MSG.GET", "DIRECT.GET", "CONSUMER.CREATE"),
		[]string{
			"$JS.API.DIRECT.GET." + s + ".>",
			"$JS.API.CONSUMER.CREATE." + s + ".>",
			"$JS.API.CONSUMER.INFO." + s + ".*",
			"$JS.API.CONSUMER.DELETE." + s + ".*",
			"$JS.FC." + s + ".>",
		},
	)
}

// kvOwn is everything its owner does with bucket b: read, create and update
// the bucket, put and delete keys.
func kvOwn(b string) []string {
	return concat(kvRead(b), stream("KV_"+b, "STREAM.CREATE", "STREAM.UPDATE"), []string{"$KV." + b + ".>"})
}

func concat(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// ServerUsers are the users for a nats-server's Options.Users, with the
// passwords given (every user must have one).
func ServerUsers(passwords map[string]string) ([]*server.User, error) {
	users := make([]*server.User, 0, len(Users()))
	for _, u := range Users() {
		if passwords[u] == "" {
			return nil, fmt.Errorf("natsauth: no password for NATS user %s", u)
		}
		users = append(users, &server.User{Username: u, Password: passwords[u], Permissions: Permissions(u)})
	}
	return users, nil
}

// RandomPasswords returns a fresh random password for every user.
func RandomPasswords() map[string]string {
	out := make(map[string]string, len(Users()))
	for _, u := range Users() {
		out[u] = rand.Text()
	}
	return out
}
