package deliver_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/membudget"
	"github.com/m365bridge/m365bridge/webhooks/deliver"
)

// Issue 17 item 3: the bodies the dispatcher holds claim from the byte
// budget the channel runners share. While a runner holds the whole budget
// the dispatcher waits before it reads a body, let alone POSTs it; once
// the runner lets go, both rows go out, and every byte the dispatcher
// claimed comes back when its attempts end.
func TestDispatcherWaitsForTheByteBudget(t *testing.T) {
	const limit = 64 << 10
	h := newHarness(t, deliver.Endpoint{Concurrency: 2})
	budget := membudget.New(limit)
	waits := make(chan int64, 8)
	budget.OnWait(func(total int64) {
		select {
		case waits <- total:
		default:
		}
	})
	ctx := context.Background()
	runner, err := budget.Claim(ctx, limit) // a runner's heavy page holds it all
	if err != nil {
		t.Fatal(err)
	}
	posted := make(chan string, 8)
	h.setRespond(func(n int, id string, attempt int) (int, http.Header) {
		posted <- id
		return http.StatusNoContent, nil
	})
	h.enqueue("msg_1", "support")
	h.enqueue("msg_2", "support")
	first, err := h.q.List(ctx, deliver.Filter{IDs: []string{"msg_1"}, WithBody: true})
	if err != nil || len(first) != 1 {
		t.Fatalf("List msg_1 = %v, %v", first, err)
	}
	size := int64(len(first[0].Body))
	h.start(deliver.Options{Memory: budget})

	safety := time.NewTimer(20 * time.Second) // a safety net: the wait comes at once
	defer safety.Stop()
	select {
	case total := <-waits:
		if total != size {
			t.Errorf("the dispatcher waited for %d bytes, want msg_1's body size %d", total, size)
		}
	case id := <-posted:
		t.Fatalf("%s was POSTed while a runner held the whole byte budget", id)
	case <-safety.C:
		t.Fatal("the dispatcher never waited for the byte budget")
	}
	if got := len(h.requests()); got != 0 {
		t.Fatalf("%d requests while the budget was taken, want 0", got)
	}
	runner.Release()
	h.runUntil("both rows delivered", h.allIn(deliver.StateDelivered, "msg_1", "msg_2"))

	// Every claimed byte is back: the whole budget can be taken again.
	waitCtx, cancel := context.WithTimeout(ctx, 20*time.Second) // safety net
	defer cancel()
	all, err := budget.Claim(waitCtx, limit)
	if err != nil {
		t.Fatalf("the dispatcher kept bytes of the budget after its attempts ended: %v", err)
	}
	all.Release()
}

// A body larger than the whole budget is clamped to it: it goes, alone.
func TestDispatcherSendsABodyLargerThanTheBudget(t *testing.T) {
	h := newHarness(t, deliver.Endpoint{Concurrency: 2})
	budget := membudget.New(100) // every event here is about 1 KiB
	var mu sync.Mutex
	var waited []int64
	budget.OnWait(func(total int64) { mu.Lock(); waited = append(waited, total); mu.Unlock() })
	h.enqueue("msg_1", "support")
	h.enqueue("msg_2", "support")
	h.start(deliver.Options{Memory: budget})
	h.runUntil("both rows delivered", h.allIn(deliver.StateDelivered, "msg_1", "msg_2"))
	mu.Lock()
	defer mu.Unlock()
	for _, n := range waited {
		if n != 100 {
			t.Errorf("a claim waited for %d bytes, want the budget (100): a body larger than it is clamped", n)
		}
	}
}
