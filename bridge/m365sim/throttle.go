package m365sim

// Outlook throttling (C.2), per (app client id, mailbox): at most
// MailboxConcurrency requests in flight (429 ApplicationThrottled), and at
// most MailboxBudget requests per MailboxWindow (429 TooManyRequests).
// Throttled requests still count toward the budget, as Graph's do. Another
// mailbox, or another app, has its own bucket.

import (
	"math"
	"net/http"
	"strconv"
	"time"
)

type throttleKey struct{ clientID, mailboxID string }

type throttleBucket struct {
	inFlight    int
	windowStart time.Time
	count       int
}

// SetThrottle switches throttling on or off at run time (Options.Throttle
// sets the initial state).
func (s *Sim) SetThrottle(enabled bool) {
	s.mu.Lock()
	s.opts.Throttle = enabled
	s.mu.Unlock()
}

// throttleAcquire takes a concurrency slot, or answers 429 and returns
// false. The caller must call release when the request is done.
func (s *Sim) throttleAcquire(w http.ResponseWriter, r *http.Request, clientID string, mb *Mailbox) (release func(), ok bool) {
	s.mu.Lock()
	if !s.opts.Throttle {
		s.mu.Unlock()
		return func() {}, true
	}
	k := throttleKey{clientID, mb.ID}
	b := s.graph.throttle[k]
	if b == nil {
		b = &throttleBucket{}
		s.graph.throttle[k] = b
	}
	now := s.now()
	window := s.opts.MailboxWindow
	if b.windowStart.IsZero() || now.Sub(b.windowStart) >= window {
		b.windowStart, b.count = now, 0
	}
	b.count++
	switch {
	case b.count > s.opts.MailboxBudget:
		s.graph.counters.throttled++
		retry := int(math.Ceil((window - now.Sub(b.windowStart)).Seconds()))
		s.mu.Unlock()
		writeTooManyRequests(w, r, max(retry, 1))
		return nil, false
	case b.inFlight >= s.opts.MailboxConcurrency:
		s.graph.counters.throttled++
		s.mu.Unlock()
		w.Header().Set("Retry-After", "1")
		writeGraphError(w, r, http.StatusTooManyRequests, "ApplicationThrottled", "Application is over its MailboxConcurrency limit.")
		return nil, false
	}
	b.inFlight++
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		b.inFlight--
		s.mu.Unlock()
	}, true
}

// writeTooManyRequests writes the documented 429 sample (GDC throttling.md).
func writeTooManyRequests(w http.ResponseWriter, r *http.Request, retryAfter int) {
	w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
	writeGraphErrorInner(w, r, http.StatusTooManyRequests, "TooManyRequests", "Please retry again later.",
		jobj{{"code", "429"}, {"message", "Please retry after"}, {"status", "429"}})
}
