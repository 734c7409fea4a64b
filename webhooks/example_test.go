package webhooks_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"time"

	"github.com/m365bridge/m365bridge/webhooks"
)

const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// A receiver in a few lines: read the raw body, verify, then decode.
func ExampleVerify() {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "read body", http.StatusBadRequest)
			return
		}
		if err := webhooks.Verify(r.Header, body, []string{secret}); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var ev webhooks.Event
		if err := json.Unmarshal(body, &ev); err != nil {
			http.Error(w, "bad event", http.StatusBadRequest)
			return
		}
		if ev.Type == webhooks.TypeMailReceived || ev.Type == webhooks.TypeMailArchived {
			var mail webhooks.MailData
			if err := json.Unmarshal(ev.Data, &mail); err != nil {
				http.Error(w, "bad mail data", http.StatusBadRequest)
				return
			}
			// Create the ticket here; use mail.ID to ignore duplicates.
			fmt.Printf("%s %s %q archive=%v\n", ev.Type, mail.ID, mail.Article.Subject, mail.Archive)
		}
		w.WriteHeader(http.StatusNoContent)
	})

	status := post(handler, webhooks.TypeMailReceived, "Printer on fire")
	fmt.Println(status)
	// Output:
	// mail.received msg_1 "Printer on fire" archive=false
	// 204
}

// Receiver does the verifying, decoding and duplicate detection.
func ExampleReceiver() {
	rc := &webhooks.Receiver{
		Verifier: webhooks.Verifier{Secrets: []string{secret}},
		OnEvent: func(ctx context.Context, d *webhooks.Delivery) error {
			fmt.Println(d.Event.Type, d.ID, "duplicate:", d.Duplicate)
			return nil
		},
	}
	post(rc, webhooks.TypeMailReceived, "Hello")
	post(rc, webhooks.TypeMailReceived, "Hello") // a retry: same webhook-id
	// Output:
	// mail.received msg_1 duplicate: false
	// mail.received msg_1 duplicate: true
}

// post sends a signed event to h the way m365bridge does and returns the status.
func post(h http.Handler, typ, subject string) int {
	ev, _ := webhooks.NewEvent(typ, time.Now(), webhooks.MailData{ID: "msg_1", Version: 1, Article: webhooks.Article{Subject: subject}})
	body, _ := json.Marshal(ev)
	now := time.Now()
	sig, _ := webhooks.Sign(secret, "msg_1", now, body)
	req := httptest.NewRequest(http.MethodPost, "/hooks/m365", bytes.NewReader(body))
	req.Header.Set(webhooks.HeaderID, "msg_1")
	req.Header.Set(webhooks.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(webhooks.HeaderSignature, sig)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code
}
