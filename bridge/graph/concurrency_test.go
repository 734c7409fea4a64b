package graph

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestInFlightLimitPerMailbox proves invariant 6 with a server that counts
// concurrency: 100 concurrent calls on one mailbox (through two handles that
// spell the address differently) never exceed 4 in flight, and another
// mailbox proceeds while the first is saturated.
func TestInFlightLimitPerMailbox(t *testing.T) {
	var inflightA, maxA, totalA atomic.Int32
	arrived := make(chan struct{}, 200)
	release := make(chan struct{})
	c, _ := fakeGraph(t, func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(strings.ToLower(r.URL.Path), "/users/a@contoso.com/") {
			okMessage(w, "b") // mailbox B answers at once
			return
		}
		n := inflightA.Add(1)
		defer inflightA.Add(-1)
		totalA.Add(1)
		for {
			m := maxA.Load()
			if n <= m || maxA.CompareAndSwap(m, n) {
				break
			}
		}
		arrived <- struct{}{}
		<-release
		okMessage(w, "a")
	})
	a1 := c.Mailbox(Mailbox{Shared: true, Address: "a@contoso.com"}, staticToken("a.b.c"))
	a2 := c.Mailbox(Mailbox{Shared: true, Address: "A@Contoso.com"}, staticToken("a.b.c"))
	b := c.Mailbox(Mailbox{Shared: true, Address: "b@contoso.com"}, staticToken("a.b.c"))

	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 100 {
		mc := a1
		if i%2 == 1 {
			mc = a2
		}
		wg.Go(func() {
			if _, err := mc.GetMessage(ctx, "a", nil, false); err != nil {
				errs <- err
			}
		})
	}
	// Wait until mailbox A's four slots are taken and its handlers blocked.
	for range 4 {
		select {
		case <-arrived:
		case <-time.After(20 * time.Second):
			t.Fatal("mailbox A never reached 4 requests in flight")
		}
	}
	// Mailbox B is not held up by A's full slots.
	bctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	if _, err := b.GetMessage(bctx, "b", nil, false); err != nil {
		t.Fatalf("mailbox B blocked behind mailbox A: %v", err)
	}
	cancel()
	if got := inflightA.Load(); got != 4 {
		t.Errorf("mailbox A in flight while blocked = %d, want 4", got)
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := maxA.Load(); got != 4 {
		t.Errorf("max in flight on mailbox A = %d, want exactly 4", got)
	}
	if got := totalA.Load(); got != 100 {
		t.Errorf("mailbox A requests = %d, want 100", got)
	}
}
