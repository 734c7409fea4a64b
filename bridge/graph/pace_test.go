package graph

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// TestRequestsPacedWithinTheMailboxBudget: with a budget of 30 requests per
// 10 minutes, 100 requests to one mailbox never put more than 30 into any
// 10 minutes (by the client's clock, which its waits move), so Graph's
// limit is never what stops them; the waits are the pacing, not 429s.
func TestRequestsPacedWithinTheMailboxBudget(t *testing.T) {
	var mu sync.Mutex
	now := testNow
	var sent []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		sent = append(sent, now)
		mu.Unlock()
		okMessage(w, "m1")
	}))
	t.Cleanup(srv.Close)
	c := &Client{BaseURL: srv.URL, HTTP: srv.Client(), MailboxBudget: 30, Logger: slog.New(slog.DiscardHandler),
		Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now },
		Sleep: func(ctx context.Context, d time.Duration) error {
			mu.Lock()
			now = now.Add(d)
			mu.Unlock()
			return ctx.Err()
		}}
	mc := c.Mailbox(Mailbox{Address: "a@contoso.com"}, staticToken("t"))
	for range 100 {
		if _, err := mc.GetMessage(context.Background(), "m1", nil, false); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sent) != 100 {
		t.Fatalf("%d requests reached the server, want 100", len(sent))
	}
	for i := range sent {
		n := 0
		for j := i; j < len(sent) && sent[j].Sub(sent[i]) < mailboxBudgetSpan; j++ {
			n++
		}
		if n > 30 {
			t.Fatalf("%d requests within 10 minutes from request %d, want at most the budget of 30", n, i)
		}
	}
	if span := sent[99].Sub(sent[0]); span < 3*mailboxBudgetSpan {
		t.Errorf("100 requests took %s of the client's clock; at 30 per 10 minutes they need at least 30 minutes", span)
	}
}

// TestPaceWindowCountsBatchItems: a $batch of 20 takes 20 units.
func TestPaceWindowCountsBatchItems(t *testing.T) {
	w := &paceWindow{limit: 50, span: time.Minute}
	if d := w.reserve(testNow, 20); d != 0 {
		t.Fatalf("first batch waits %s", d)
	}
	if d := w.reserve(testNow.Add(time.Second), 20); d != 0 {
		t.Fatalf("second batch waits %s", d)
	}
	if d := w.reserve(testNow.Add(2*time.Second), 20); d != 58*time.Second {
		t.Fatalf("third batch waits %s, want until the first leaves the window (58s)", d)
	}
	if d := w.reserve(testNow.Add(time.Minute), 20); d != 0 {
		t.Fatalf("after the first left: waits %s", d)
	}
}
