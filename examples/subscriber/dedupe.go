package main

import (
	"container/list"
	"sync"
)

// seenIDs remembers the most recent event ids, evicting the least recently
// seen once it holds max of them.
//
// JetStream delivers at least once: an event is redelivered when our ack is
// lost or late, and the outbox relay may publish an event again after the
// stream's duplicate window (2 minutes) has passed, under the same event id.
// This bounded in-memory set hides such repeats from the handler while the
// process runs. It is only an example: it forgets on restart and cannot see
// what another replica handled. A real subscriber records the event id in its
// own database, in the same transaction as the effect of the event (e.g. a
// processed_events table with the id as primary key), and skips the event
// when that insert conflicts.
type seenIDs struct {
	mu    sync.Mutex
	max   int
	order *list.List               // front: most recently seen
	index map[string]*list.Element // id -> its element in order
}

func newSeenIDs(max int) *seenIDs {
	return &seenIDs{max: max, order: list.New(), index: make(map[string]*list.Element, max)}
}

// Contains reports whether id was seen, counting this as a use.
func (s *seenIDs) Contains(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.index[id]
	if ok {
		s.order.MoveToFront(e)
	}
	return ok
}

// Add records id, evicting the least recently seen id when full.
func (s *seenIDs) Add(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.index[id]; ok {
		s.order.MoveToFront(e)
		return
	}
	s.index[id] = s.order.PushFront(id)
	if s.order.Len() > s.max {
		oldest := s.order.Back()
		s.order.Remove(oldest)
		delete(s.index, oldest.Value.(string))
	}
}

// Len is the number of ids remembered.
func (s *seenIDs) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.order.Len()
}
