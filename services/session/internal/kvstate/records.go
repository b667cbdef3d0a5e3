package kvstate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// records stores JSON values of type T in a bucket under prefix + id,
// changed only by compare-and-set. Their lifetime is the bucket TTL plus
// the record's own expiry: never a per-key TTL, which an Update would drop.
type records[T any] struct {
	kv     jetstream.KeyValue
	prefix string // "" or e.g. "state."
	what   string // in errors: "qr ticket"
}

// Create stores a new record; ErrConflict if it exists.
func (r *records[T]) Create(ctx context.Context, id string, rec T) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if _, err := r.kv.Create(ctx, r.prefix+id, data); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return ErrConflict
		}
		return fmt.Errorf("create %s: %w", r.what, err)
	}
	return nil
}

// Get returns a record and its revision; ErrNotFound when it never
// existed, was consumed or aged out.
func (r *records[T]) Get(ctx context.Context, id string) (T, uint64, error) {
	var rec T
	e, err := r.kv.Get(ctx, r.prefix+id)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return rec, 0, ErrNotFound
		}
		return rec, 0, fmt.Errorf("get %s: %w", r.what, err)
	}
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return rec, 0, fmt.Errorf("decode %s: %w", r.what, err)
	}
	return rec, e.Revision(), nil
}

// Update replaces a record if it is still at rev; ErrConflict otherwise
// (including when it was consumed in between).
func (r *records[T]) Update(ctx context.Context, id string, rec T, rev uint64) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if _, err := r.kv.Update(ctx, r.prefix+id, data, rev); err != nil {
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
			return ErrConflict
		}
		return fmt.Errorf("update %s: %w", r.what, err)
	}
	return nil
}

// Consume deletes a record if it is still at rev: of concurrent consumers
// exactly one gets nil, the others ErrConflict.
func (r *records[T]) Consume(ctx context.Context, id string, rev uint64) error {
	if err := r.kv.Delete(ctx, r.prefix+id, jetstream.LastRevision(rev)); err != nil {
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
			return ErrConflict
		}
		return fmt.Errorf("consume %s: %w", r.what, err)
	}
	return nil
}

// room is nil while the bucket's used bytes are below fill of its cap,
// ErrFull after. It costs one stream info request.
func (r *records[T]) room(ctx context.Context, fill float64) error {
	st, err := r.kv.Status(ctx)
	if err != nil {
		return fmt.Errorf("%s bucket status: %w", r.what, err)
	}
	bs, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok || bs.StreamInfo() == nil {
		return nil
	}
	info := bs.StreamInfo()
	if info.Config.MaxBytes > 0 && float64(info.State.Bytes) >= fill*float64(info.Config.MaxBytes) {
		return ErrFull
	}
	return nil
}
