// Package logtest captures log output in tests, so a test can assert what a
// service never logs (a session_key, a token, a code).
package logtest

import (
	"bytes"
	"sync"
)

// Buffer is an io.Writer safe for the concurrent writes of several services'
// loggers.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
