package deliver_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/m365bridge/m365bridge/webhooks"
	"github.com/m365bridge/m365bridge/webhooks/deliver"
)

// panicking panics in every attempt to send event id: a bug that one
// event always hits.
type panicking struct{ id string }

func (p panicking) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get(webhooks.HeaderID) == p.id {
		panic("test: a bug while sending " + p.id)
	}
	return http.DefaultTransport.RoundTrip(r)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Issue 12 item 9: a panic in one delivery is that row's failed attempt,
// retried on its schedule and a dead letter (listed, replayable, the panic
// in its last error) once its attempts run out, with the stack in the log;
// the other rows are delivered and the dispatcher keeps running. Without
// the recovery the panic ends the test binary.
func TestDeliveryPanicFailsOneRow(t *testing.T) {
	h := newHarness(t, deliver.Endpoint{Concurrency: 2, MaxAttempts: 2})
	logs := &syncBuffer{}
	ids := []string{"msg_1", "msg_boom", "msg_3"}
	for _, id := range ids {
		h.enqueue(id, "support")
	}
	h.start(deliver.Options{HTTPClient: &http.Client{Transport: panicking{id: "msg_boom"}},
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	h.runUntil("the others delivered and the panicking row dead", func() bool {
		r := h.rows()
		return r["msg_1"].State == deliver.StateDelivered && r["msg_3"].State == deliver.StateDelivered &&
			r["msg_boom"].State == deliver.StateDead
	})
	if b := h.rows()["msg_boom"]; b.Attempts != 2 || !strings.Contains(b.LastError, "panic") {
		t.Errorf("panicking row: %d attempts, last error %q; want 2, naming the panic", b.Attempts, b.LastError)
	}
	if l := logs.String(); strings.Count(l, "delivery attempt panicked") != 2 || !strings.Contains(l, "runtime/debug.Stack") {
		t.Errorf("the log lacks the two panics with their stacks:\n%s", l)
	}
	// The lane still works: a new event is delivered.
	h.enqueue("msg_4", "support")
	h.runUntil("a later event delivered", h.allIn(deliver.StateDelivered, "msg_4"))
}
