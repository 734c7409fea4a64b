package mailsync

import (
	"strings"
	"sync"
	"testing"
	"time"
)

// waitUntil polls cond until it holds; the deadline is a safety net far
// above the normal duration.
func waitUntil(t *testing.T, what string, deadline time.Duration, cond func() bool) {
	t.Helper()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %s waiting for %s", deadline, what)
		}
		time.Sleep(20 * time.Millisecond) // pacing of a look at the sim's counters and the store, which cannot push
	}
}

// lockedBuffer collects a runner's log lines for assertions.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
