package deliver_test

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/webhooks/deliver"
)

// TestShutdownBoundsInflight: Run returns within the grace even when a
// receiver never answers; the row keeps its committed attempt and is
// retried later.
func TestShutdownBoundsInflight(t *testing.T) {
	t.Parallel()
	h := newHarness(t, deliver.Endpoint{})
	hang := make(chan struct{})
	defer close(hang)
	arrived := make(chan struct{}, 1)
	h.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-hang
	})
	h.enqueue("m1", "c")
	d, err := deliver.New(h.q, []deliver.Endpoint{h.ep}, deliver.Options{Now: h.clock.Now, After: h.clock.After, ShutdownGrace: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the POST never arrived")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the shutdown grace")
	}
	r := h.rows()["m1"]
	if r.State != deliver.StatePending || r.Attempts != 1 || !r.NextAttemptAt.After(h.clock.Now()) {
		t.Errorf("row after shutdown mid-POST: %s, %d attempts, next %v; want pending, 1, a future retry", r.State, r.Attempts, r.NextAttemptAt)
	}
}

// TestSetEndpointsWhileRunning: a reload adds a lane for a new endpoint and
// stops the lane of a removed one (its rows stay pending).
func TestSetEndpointsWhileRunning(t *testing.T) {
	t.Parallel()
	h := newHarness(t, deliver.Endpoint{})
	h.start(deliver.Options{})
	second := h.ep
	second.Name = "archive"
	if err := h.db.Enqueue(context.Background(), store.OutboxEvent{EventID: "m1", Endpoint: "archive", Channel: "c", Type: "webhook.test", Body: []byte(`{"type":"webhook.test","data":{"id":"m1"}}`)}); err != nil {
		t.Fatal(err)
	}
	if err := h.d.SetEndpoints([]deliver.Endpoint{h.ep, second}); err != nil {
		t.Fatal(err)
	}
	h.runUntil("delivered to the new endpoint", h.allIn(deliver.StateDelivered, "m1"))

	if err := h.d.SetEndpoints([]deliver.Endpoint{second}); err != nil {
		t.Fatal(err)
	}
	h.enqueue("m2", "c") // for "helpdesk", no longer configured
	start := h.clock.Now()
	h.runUntil("an hour", func() bool { return h.clock.Now().Sub(start) > time.Hour })
	if r := h.rows()["m2"]; r.State != deliver.StatePending || r.Attempts != 0 {
		t.Errorf("row of a removed endpoint: %s after %d attempts, want pending and untouched", r.State, r.Attempts)
	}
	bad := second
	bad.URL = "not a url"
	if err := h.d.SetEndpoints([]deliver.Endpoint{bad}); err == nil {
		t.Error("SetEndpoints with a bad URL: no error")
	}
}

func TestNewRejectsBadEndpoints(t *testing.T) {
	t.Parallel()
	db, err := store.Open(context.Background(), filepath.Join(t.TempDir(), store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ep := deliver.Endpoint{Name: "a", URL: "https://x.example/h", Secrets: []string{testSecret}}
	if _, err := deliver.New(db.Outbox(), []deliver.Endpoint{ep, ep}, deliver.Options{}); err == nil {
		t.Error("two endpoints with one name: no error")
	}
	if _, err := deliver.New(db.Outbox(), []deliver.Endpoint{{Name: "a", URL: "https://x.example/h"}}, deliver.Options{}); err == nil {
		t.Error("endpoint without a secret: no error")
	}
}
