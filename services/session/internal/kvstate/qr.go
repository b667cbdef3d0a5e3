package kvstate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wxlogin/wxlogin/shared/api/session"
)

// Tickets stores QR login tickets in the QR bucket, keyed by ticket. Their
// lifetime is the bucket TTL plus the record's ExpiresAt: never a per-key
// TTL, which an Update would drop.
type Tickets struct{ kv jetstream.KeyValue }

// NewTickets returns a store over the QR bucket.
func NewTickets(kv jetstream.KeyValue) *Tickets { return &Tickets{kv: kv} }

// Create stores a new ticket; ErrConflict if it exists.
func (t *Tickets) Create(ctx context.Context, ticket string, rec session.QRRecord) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if _, err := t.kv.Create(ctx, ticket, data); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return ErrConflict
		}
		return fmt.Errorf("create qr ticket: %w", err)
	}
	return nil
}

// Get returns a ticket's record and revision; ErrNotFound when it never
// existed, was consumed or aged out.
func (t *Tickets) Get(ctx context.Context, ticket string) (session.QRRecord, uint64, error) {
	e, err := t.kv.Get(ctx, ticket)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return session.QRRecord{}, 0, ErrNotFound
		}
		return session.QRRecord{}, 0, fmt.Errorf("get qr ticket: %w", err)
	}
	var rec session.QRRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return session.QRRecord{}, 0, fmt.Errorf("decode qr ticket: %w", err)
	}
	return rec, e.Revision(), nil
}

// Update replaces a ticket's record if it is still at rev; ErrConflict
// otherwise (including when it was consumed in between).
func (t *Tickets) Update(ctx context.Context, ticket string, rec session.QRRecord, rev uint64) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if _, err := t.kv.Update(ctx, ticket, data, rev); err != nil {
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
			return ErrConflict
		}
		return fmt.Errorf("update qr ticket: %w", err)
	}
	return nil
}

// Consume deletes a ticket if it is still at rev: of concurrent consumers
// exactly one gets nil, the others ErrConflict.
func (t *Tickets) Consume(ctx context.Context, ticket string, rev uint64) error {
	if err := t.kv.Delete(ctx, ticket, jetstream.LastRevision(rev)); err != nil {
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
			return ErrConflict
		}
		return fmt.Errorf("consume qr ticket: %w", err)
	}
	return nil
}
