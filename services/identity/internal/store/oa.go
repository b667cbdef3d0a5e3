package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/wxlogin/wxlogin/shared/api/identity"
)

// WriteOAEvent writes an official-account push event (oa.subscribed, …)
// to the outbox; the relay publishes it like the user events.
func (s *Store) WriteOAEvent(ctx context.Context, subject, typ string, push identity.OAPush) error {
	ev := identity.OAEvent{ID: newEventID(), Type: typ, OccurredAt: time.Now().UTC(), OA: push}
	payload, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO outbox (id, subject, payload) VALUES ($1::uuid, $2, $3::jsonb)`,
		ev.ID, subject, payload); err != nil {
		return fmt.Errorf("write oa event: %w", err)
	}
	return nil
}
