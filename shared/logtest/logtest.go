// Package logtest captures log output in tests, so a test can assert what a
// service never logs (a session_key, a token, a code).
package logtest

import (
	"bytes"
	"log/slog"
	"reflect"
	"sync"
	"testing"
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

// LogsEveryField fails the test unless cfg's LogValue, a group written out
// field by field, has one attribute per setting of cfg's struct type: each
// field read from the environment (an env tag, or a struct of such fields
// such as the NATS credentials). A setting added later and left out of the
// log would not be seen at start, which is where a wrong one is looked
// for. Settings holding secrets are still attributes: masked, not left out.
func LogsEveryField(t testing.TB, cfg slog.LogValuer) {
	t.Helper()
	v := cfg.LogValue()
	if v.Kind() != slog.KindGroup {
		t.Fatalf("%T.LogValue is a %s, want a group", cfg, v.Kind())
	}
	typ := reflect.TypeOf(cfg)
	var fields []string
	for f := range typ.Fields() {
		if _, env := f.Tag.Lookup("env"); f.IsExported() && (env || f.Type.Kind() == reflect.Struct) {
			fields = append(fields, f.Name)
		}
	}
	seen := map[string]bool{}
	for _, a := range v.Group() {
		if seen[a.Key] {
			t.Errorf("%T logs %s twice", cfg, a.Key)
		}
		seen[a.Key] = true
	}
	if got := len(v.Group()); got != len(fields) {
		var names []string
		for _, a := range v.Group() {
			names = append(names, a.Key)
		}
		t.Errorf("%T logs %d attributes %v for its %d fields %v", cfg, got, names, len(fields), fields)
	}
}
