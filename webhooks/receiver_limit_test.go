package webhooks

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// paddedEvent is a valid event envelope of exactly size bytes.
func paddedEvent(t *testing.T, size int) []byte {
	t.Helper()
	head := []byte(`{"type":"mail.received","timestamp":"2026-11-26T20:00:00Z","data":{"id":"msg_big","pad":"`)
	tail := []byte(`"}}`)
	n := size - len(head) - len(tail)
	if n < 0 {
		t.Fatalf("size %d too small", size)
	}
	b := make([]byte, 0, size)
	b = append(b, head...)
	b = append(b, bytes.Repeat([]byte{'a'}, n)...)
	return append(b, tail...)
}

// TestReceiverTakesTheLargestEvent: the bridge builds events up to
// MaxEventBytes; the receiver kit's default limit must take them (a 413
// dead-letters an event for good), and refuse one byte more.
func TestReceiverTakesTheLargestEvent(t *testing.T) {
	secret := vectors[0].secret
	now := time.Date(2026, 11, 26, 20, 0, 0, 0, time.UTC)
	var got int
	rc := &Receiver{
		Verifier: Verifier{Secrets: []string{secret}, Now: func() time.Time { return now }},
		OnEvent:  func(ctx context.Context, d *Delivery) error { got = len(d.Body); return nil },
	}
	if l := rc.maxBody(); l != MaxEventBytes {
		t.Fatalf("default body limit %d, want MaxEventBytes (%d)", l, MaxEventBytes)
	}
	if raceEnabled {
		t.Skip("the 64 MiB requests take tens of seconds under the race detector; run without -race")
	}
	for _, tt := range []struct {
		size int
		want int
	}{
		{MaxEventBytes, http.StatusNoContent},
		{MaxEventBytes + 1, http.StatusRequestEntityTooLarge},
	} {
		body := paddedEvent(t, tt.size)
		rec := httptest.NewRecorder()
		rc.ServeHTTP(rec, signedRequest(t, "msg_big", now, body, secret))
		if rec.Code != tt.want {
			t.Errorf("a %d-byte event: status %d %.200s, want %d", tt.size, rec.Code, rec.Body, tt.want)
		}
		if tt.want == http.StatusNoContent && got != tt.size {
			t.Errorf("OnEvent saw %d bytes, want %d", got, tt.size)
		}
		if tt.want == http.StatusRequestEntityTooLarge && !strings.Contains(rec.Body.String(), "larger than") {
			t.Errorf("413 without a reason: %q", rec.Body)
		}
	}
}
