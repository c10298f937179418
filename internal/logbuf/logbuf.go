// Package logbuf is a sink for the logs and output of code under test:
// written from several goroutines (slog handlers, a command's output)
// while the test reads it.
package logbuf

import (
	"strings"
	"sync"
)

// Buffer is a strings.Builder behind a lock. The zero value is ready.
type Buffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String is everything written so far.
func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Count is how many lines of a text handler (slog.NewTextHandler) carry
// msg as their message.
func (l *Buffer) Count(msg string) int {
	return strings.Count(l.String(), `msg="`+msg+`"`)
}
