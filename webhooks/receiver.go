package webhooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Delivery is one verified request handed to Receiver.OnEvent.
type Delivery struct {
	// ID is the webhook-id (equal to the event's data.id).
	ID string
	// Timestamp is the attempt's webhook-timestamp.
	Timestamp time.Time
	// Attempt is the sender's attempt number (X-M365Bridge-Attempt), 0 if absent.
	Attempt int
	Event   Event
	// Body is the raw request body, exactly as signed.
	Body   []byte
	Header http.Header
	// Duplicate is true when this id was already accepted by this receiver
	// (a retry after a lost response, or a replay).
	Duplicate bool
}

// StatusError lets OnEvent choose the response status: 503 asks the sender
// to retry later, a 4xx (other than 408, 409, 425, 429) rejects the event.
type StatusError struct {
	Code int
	Err  error
}

func (e *StatusError) Error() string { return fmt.Sprintf("status %d: %v", e.Code, e.Err) }
func (e *StatusError) Unwrap() error { return e.Err }

// Receiver is an http.Handler that verifies Standard Webhooks requests,
// decodes the event and calls OnEvent. It answers 204 when OnEvent returns
// nil, 401 with the reason on a bad signature, 400 on a malformed body, 413
// when the body exceeds MaxBody, 405 for anything but POST, and the
// StatusError's code (else 500) when OnEvent fails. Ids it accepted are
// remembered (up to Remember of them) so retries are flagged Duplicate.
type Receiver struct {
	Verifier
	// OnEvent is called once per verified request, duplicates included.
	OnEvent func(ctx context.Context, d *Delivery) error
	// OnReject, when set, sees every request that was refused and why.
	OnReject func(r *http.Request, status int, err error)
	// MaxBody bounds a request body; 0 means MaxEventBytes (64 MiB), the
	// largest event the bridge sends. A smaller limit answers 413 to events
	// the bridge builds, and they become dead letters.
	MaxBody int64
	// Remember is how many accepted ids are kept for duplicate detection; 0
	// means 100,000.
	Remember int

	mu   sync.Mutex
	seen map[string]struct{}
	fifo []string
}

// ServeHTTP implements http.Handler.
func (rc *Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		rc.reject(w, r, http.StatusMethodNotAllowed, fmt.Errorf("method %s not allowed, use POST", r.Method))
		return
	}
	limit := rc.maxBody()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			rc.reject(w, r, http.StatusRequestEntityTooLarge, fmt.Errorf("body larger than %d bytes (the receiver's MaxBody)", limit))
			return
		}
		rc.reject(w, r, http.StatusBadRequest, fmt.Errorf("read body: %w", err))
		return
	}
	if err := rc.Verifier.Verify(r.Header, body); err != nil {
		status := http.StatusUnauthorized
		if errors.Is(err, ErrInvalidSecret) {
			status = http.StatusInternalServerError // our configuration, not the sender's fault
		}
		rc.reject(w, r, status, err)
		return
	}
	var ev Event
	if err := json.Unmarshal(body, &ev); err != nil {
		rc.reject(w, r, http.StatusBadRequest, fmt.Errorf("decode event: %w", err))
		return
	}
	if ev.Type == "" || len(ev.Data) == 0 {
		rc.reject(w, r, http.StatusBadRequest, fmt.Errorf("decode event: type or data missing"))
		return
	}
	unix, _ := strconv.ParseInt(r.Header.Get(HeaderTimestamp), 10, 64) // verified above
	attempt, _ := strconv.Atoi(r.Header.Get("X-M365Bridge-Attempt"))
	d := &Delivery{
		ID:        r.Header.Get(HeaderID),
		Timestamp: time.Unix(unix, 0).UTC(),
		Attempt:   attempt,
		Event:     ev,
		Body:      body,
		Header:    r.Header,
		Duplicate: rc.wasSeen(r.Header.Get(HeaderID)),
	}
	if rc.OnEvent != nil {
		if err := rc.OnEvent(r.Context(), d); err != nil {
			status := http.StatusInternalServerError
			var se *StatusError
			if errors.As(err, &se) && se.Code >= 400 && se.Code <= 599 {
				status = se.Code
			}
			rc.reject(w, r, status, err)
			return
		}
	}
	rc.remember(d.ID)
	w.WriteHeader(http.StatusNoContent)
}

// maxBody is the effective body limit: MaxBody, or MaxEventBytes.
func (rc *Receiver) maxBody() int64 {
	if rc.MaxBody > 0 {
		return rc.MaxBody
	}
	return MaxEventBytes
}

func (rc *Receiver) reject(w http.ResponseWriter, r *http.Request, status int, err error) {
	if rc.OnReject != nil {
		rc.OnReject(r, status, err)
	}
	http.Error(w, err.Error(), status)
}

func (rc *Receiver) wasSeen(id string) bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	_, ok := rc.seen[id]
	return ok
}

func (rc *Receiver) remember(id string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.seen == nil {
		rc.seen = map[string]struct{}{}
	}
	if _, ok := rc.seen[id]; ok {
		return
	}
	max := rc.Remember
	if max <= 0 {
		max = 100_000
	}
	for len(rc.fifo) >= max {
		delete(rc.seen, rc.fifo[0])
		rc.fifo = rc.fifo[1:]
	}
	rc.seen[id] = struct{}{}
	rc.fifo = append(rc.fifo, id)
}
