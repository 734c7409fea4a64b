// Package helpdeskfake holds faithful fakes of helpdesk REST APIs for the
// tests of delivery recipes: httptest servers that answer like the real
// APIs (request and response shapes, status codes, error bodies,
// rate-limit headers), each behaviour cited next to the code from the
// helpdesk's public documentation or source, and that record everything a
// test checks: tickets, articles or comments, the notifications the
// helpdesk would have mailed to customers, and attachment bytes.
//
// A fake must not flatter the bridge: where the real API has no way to do
// something (an idempotency key, a search that is not eventually
// consistent), neither has the fake.
package helpdeskfake

import (
	"encoding/json"
	"net/http"
	"sync"
)

// Notification is a mail the helpdesk would have sent to a customer
// (an auto-reply of a trigger).
type Notification struct {
	TicketID int
	To       string
	Trigger  string
}

// Attachment is a stored file.
type Attachment struct {
	Filename    string
	ContentType string
	ContentID   string // empty unless the API kept one
	Inline      bool
	Data        []byte
}

// failer answers the next requests with a given status (tests of retry and
// Retry-After handling).
type failer struct {
	mu         sync.Mutex
	n          int
	status     int
	retryAfter string
}

// FailNext makes the next n requests fail with status, carrying the
// Retry-After header retryAfter when not empty.
func (f *failer) FailNext(n, status int, retryAfter string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n, f.status, f.retryAfter = n, status, retryAfter
}

// fail answers w when a failure is pending.
func (f *failer) fail(w http.ResponseWriter, body any) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n <= 0 {
		return false
	}
	f.n--
	if f.retryAfter != "" {
		w.Header().Set("Retry-After", f.retryAfter)
	}
	writeJSON(w, f.status, body)
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
