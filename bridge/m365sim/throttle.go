package m365sim

// Throttling, on by default with Microsoft's published limits. Each limit
// cites the page it comes from (GDC = microsoftgraph/microsoft-graph-docs-contrib):
//
//   - Outlook, per app ID and mailbox (GDC includes/throttling-outlook.md,
//     "Limits per mailbox", included by concepts/throttling-limits.md
//     "Outlook service limits"): "10,000 API requests in a 10-minute
//     period", "Four concurrent requests", "150 megabytes (MB) upload
//     (PATCH, POST, PUT) in a 5-minute period". "Exceeding the limit for one
//     mailbox doesn't affect the ability of the application to access
//     another mailbox."
//   - Global, per app across all tenants (GDC concepts/throttling-limits.md,
//     global limits table): "Any | 130,000 requests per 10 seconds". Every
//     Graph request counts, a $batch as a whole and each of its items.
//   - Requests in a batch "are evaluated individually against throttling
//     limits"; a throttled item "fails with a status code of 429" and the
//     batch itself "succeeds with a status code of 200"; the item carries
//     its own retry-after header (GDC concepts/throttling.md, "Throttling
//     and batching"). The $batch request itself is throttled as a whole by
//     the global limit (429 for the whole batch, no item runs).
//   - Graph "continues to log resource usage while a client is being
//     throttled" (GDC concepts/throttling.md): throttled requests still
//     count toward the request budgets.
//   - The 429 body is the documented sample (GDC concepts/throttling.md,
//     "Sample response"); the ApplicationThrottled texts for the
//     concurrency and upload limits are issue evidence quoted in
//     shared/reference/graph-and-entra.md C.1.
//
// Only Graph requests count: the control API (/_sim/...) and the Go methods
// on *Sim (InjectMail, Messages, ...) are the test's hands, not an app's
// traffic, so helpers that use them never take a slot from the bridge.
//
// Options.NoThrottle turns all of this off; it is the reason, so an
// unthrottled sim always says why.

import (
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Published limits, the defaults of Options.
const (
	DefaultMailboxConcurrency  = 4
	DefaultMailboxBudget       = 10000
	DefaultMailboxWindow       = 10 * time.Minute
	DefaultMailboxUploadBytes  = 150 << 20 // "150 megabytes"
	DefaultMailboxUploadWindow = 5 * time.Minute
	DefaultAppBudget           = 130000
	DefaultAppWindow           = 10 * time.Second
)

// Texts of the ApplicationThrottled answers (reference C.1).
const (
	msgOverConcurrency = "Application is over its MailboxConcurrency limit."
	msgOverUpload      = "Application is over its IncomingBytes limit."
)

type throttleKey struct{ clientID, mailboxID string }

// throttleBucket is one (app, mailbox) pair's usage.
type throttleBucket struct {
	inFlight    int
	windowStart time.Time
	count       int
	uploadStart time.Time
	uploadBytes int64
}

// appBucket is one app's usage against the global limit.
type appBucket struct {
	windowStart time.Time
	count       int
}

// ErrThrottleReason is returned when throttling is turned off without a
// reason.
var ErrThrottleReason = errors.New("turning throttling off needs a reason (Graph always throttles; say why this use may ignore it)")

// Throttled reports whether throttling is on.
func (s *Sim) Throttled() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opts.NoThrottle == ""
}

// SetThrottle switches throttling at run time. Turning it off needs a
// reason (the same as Options.NoThrottle); turning it on ignores reason.
func (s *Sim) SetThrottle(on bool, reason string) error {
	reason = strings.TrimSpace(reason)
	if !on && reason == "" {
		return ErrThrottleReason
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if on {
		s.opts.NoThrottle = ""
	} else {
		s.opts.NoThrottle = reason
	}
	return nil
}

// windowLeft is the whole seconds until a window that started at start
// ends, at least 1: the Retry-After of a budget 429.
func windowLeft(now, start time.Time, window time.Duration) int {
	return max(int(math.Ceil((window - now.Sub(start)).Seconds())), 1)
}

// appAdmit counts r against the app's global budget, or answers 429 and
// returns false. Callers hold no lock.
func (s *Sim) appAdmit(w http.ResponseWriter, r *http.Request, clientID string) bool {
	s.mu.Lock()
	if s.opts.NoThrottle != "" {
		s.mu.Unlock()
		return true
	}
	b := s.graph.apps[clientID]
	if b == nil {
		b = &appBucket{}
		s.graph.apps[clientID] = b
	}
	now := s.now()
	if b.windowStart.IsZero() || now.Sub(b.windowStart) >= s.opts.AppWindow {
		b.windowStart, b.count = now, 0
	}
	b.count++
	if b.count <= s.opts.AppBudget {
		s.mu.Unlock()
		return true
	}
	s.graph.counters.throttled++
	retry := windowLeft(now, b.windowStart, s.opts.AppWindow)
	s.mu.Unlock()
	writeTooManyRequests(w, r, retry)
	return false
}

// uploadSize is what a request uploads toward the IncomingBytes limit:
// the body of a PATCH, POST or PUT.
func uploadSize(r *http.Request) int64 {
	switch r.Method {
	case http.MethodPatch, http.MethodPost, http.MethodPut:
		return max(r.ContentLength, 0)
	}
	return 0
}

// throttleAcquire applies the per (app, mailbox) limits: it takes a
// concurrency slot, or answers 429 and returns false. The caller must call
// release when the request is done, before the answer leaves (mailRoute
// buffers the answer), so a client that sees the answer and sends its next
// request never finds the slot still taken.
func (s *Sim) throttleAcquire(w http.ResponseWriter, r *http.Request, clientID string, mb *Mailbox) (release func(), ok bool) {
	s.mu.Lock()
	if s.opts.NoThrottle != "" {
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
	if b.windowStart.IsZero() || now.Sub(b.windowStart) >= s.opts.MailboxWindow {
		b.windowStart, b.count = now, 0
	}
	if b.uploadStart.IsZero() || now.Sub(b.uploadStart) >= s.opts.MailboxUploadWindow {
		b.uploadStart, b.uploadBytes = now, 0
	}
	b.count++ // throttled requests count too
	up := uploadSize(r)
	switch {
	case b.count > s.opts.MailboxBudget:
		s.graph.counters.throttled++
		retry := windowLeft(now, b.windowStart, s.opts.MailboxWindow)
		s.mu.Unlock()
		writeTooManyRequests(w, r, retry)
		return nil, false
	case b.inFlight >= s.opts.MailboxConcurrency:
		s.graph.counters.throttled++
		s.mu.Unlock()
		w.Header().Set("Retry-After", "1")
		writeGraphError(w, r, http.StatusTooManyRequests, "ApplicationThrottled", msgOverConcurrency)
		return nil, false
	case up > 0 && b.uploadBytes+up > s.opts.MailboxUploadBytes:
		s.graph.counters.throttled++
		retry := windowLeft(now, b.uploadStart, s.opts.MailboxUploadWindow)
		s.mu.Unlock()
		w.Header().Set("Retry-After", strconv.Itoa(retry))
		writeGraphError(w, r, http.StatusTooManyRequests, "ApplicationThrottled", msgOverUpload)
		return nil, false
	}
	b.uploadBytes += up
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

// deferredWriter holds a handler's status and body until the request's
// throttling slot is released (headers go to the real writer at once:
// nothing is sent before WriteHeader).
type deferredWriter struct {
	w      http.ResponseWriter
	status int
	body   []byte
}

func (d *deferredWriter) Header() http.Header { return d.w.Header() }

func (d *deferredWriter) WriteHeader(code int) {
	if d.status == 0 {
		d.status = code
	}
}

func (d *deferredWriter) Write(b []byte) (int, error) {
	if d.status == 0 {
		d.status = http.StatusOK
	}
	d.body = append(d.body, b...)
	return len(b), nil
}

// Unwrap lets a dropped-connection fault reach Hijack.
func (d *deferredWriter) Unwrap() http.ResponseWriter { return d.w }

// send writes what the handler produced, if anything.
func (d *deferredWriter) send() {
	if d.status == 0 {
		return
	}
	d.w.WriteHeader(d.status)
	if len(d.body) > 0 {
		d.w.Write(d.body)
	}
}
