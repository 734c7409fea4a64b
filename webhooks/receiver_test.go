package webhooks

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

func signedRequest(t *testing.T, id string, at time.Time, body []byte, secret string) *http.Request {
	t.Helper()
	sig, err := Sign(secret, id, at, body)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "/hook", bytes.NewReader(body))
	req.Header.Set(HeaderID, id)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(at.Unix(), 10))
	req.Header.Set(HeaderSignature, sig)
	req.Header.Set("X-M365Bridge-Attempt", "3")
	return req
}

func TestReceiver(t *testing.T) {
	secret := vectors[0].secret
	now := time.Date(2026, 11, 26, 20, 0, 0, 0, time.UTC)
	good := []byte(`{"type":"webhook.test","timestamp":"2026-11-26T20:00:00Z","data":{"id":"evt_1","version":1,"message":"hi"}}`)
	var got []*Delivery
	fail := false
	rc := &Receiver{
		Verifier: Verifier{Secrets: []string{secret}, Now: func() time.Time { return now }},
		OnEvent: func(ctx context.Context, d *Delivery) error {
			got = append(got, d)
			if fail {
				return &StatusError{Code: http.StatusServiceUnavailable, Err: errors.New("try later")}
			}
			return nil
		},
		MaxBody: 1024,
	}
	serve := func(req *http.Request) (int, string) {
		rec := httptest.NewRecorder()
		rc.ServeHTTP(rec, req)
		b, _ := io.ReadAll(rec.Body)
		return rec.Code, string(b)
	}

	t.Run("valid", func(t *testing.T) {
		code, _ := serve(signedRequest(t, "evt_1", now, good, secret))
		if code != http.StatusNoContent {
			t.Fatalf("status %d, want 204", code)
		}
		d := got[len(got)-1]
		if d.ID != "evt_1" || d.Event.Type != TypeWebhookTest || d.Attempt != 3 || d.Duplicate || !d.Timestamp.Equal(now) {
			t.Errorf("delivery = %+v", d)
		}
	})
	t.Run("duplicate", func(t *testing.T) {
		code, _ := serve(signedRequest(t, "evt_1", now, good, secret))
		if code != http.StatusNoContent || !got[len(got)-1].Duplicate {
			t.Errorf("status %d duplicate %v, want 204 true", code, got[len(got)-1].Duplicate)
		}
	})
	t.Run("handler failure is not remembered", func(t *testing.T) {
		fail = true
		code, _ := serve(signedRequest(t, "evt_2", now, good, secret))
		fail = false
		if code != http.StatusServiceUnavailable {
			t.Fatalf("status %d, want 503", code)
		}
		code, _ = serve(signedRequest(t, "evt_2", now, good, secret))
		if code != http.StatusNoContent || got[len(got)-1].Duplicate {
			t.Errorf("retry: status %d duplicate %v, want 204 false", code, got[len(got)-1].Duplicate)
		}
	})
	n := len(got)
	tests := []struct {
		name string
		req  *http.Request
		code int
		text string
	}{
		{"bad signature", signedRequest(t, "evt_3", now, good, vectors[1].secret), 401, "no matching signature"},
		{"old", signedRequest(t, "evt_3", now.Add(-time.Hour), good, secret), 401, "too old"},
		{"malformed JSON", signedRequest(t, "evt_3", now, []byte(`{"type":`), secret), 400, "decode event"},
		{"not an event", signedRequest(t, "evt_3", now, []byte(`{"x":1}`), secret), 400, "type or data missing"},
		{"too large", signedRequest(t, "evt_3", now, bytes.Repeat([]byte("x"), 2000), secret), 413, "larger than"},
		{"GET", httptest.NewRequest(http.MethodGet, "/hook", nil), 405, "use POST"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, text := serve(tt.req)
			if code != tt.code || !strings.Contains(text, tt.text) {
				t.Errorf("got %d %q, want %d containing %q", code, text, tt.code, tt.text)
			}
		})
	}
	if len(got) != n {
		t.Errorf("OnEvent called for %d refused requests", len(got)-n)
	}
}

func TestReceiverRememberBound(t *testing.T) {
	rc := &Receiver{Remember: 2}
	for _, id := range []string{"a", "b", "c"} {
		rc.remember(id)
	}
	if rc.wasSeen("a") || !rc.wasSeen("b") || !rc.wasSeen("c") {
		t.Errorf("after a, b, c with Remember 2: seen a=%v b=%v c=%v, want false true true", rc.wasSeen("a"), rc.wasSeen("b"), rc.wasSeen("c"))
	}
}
