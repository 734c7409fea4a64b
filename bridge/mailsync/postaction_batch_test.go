package mailsync

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/m365sim"
	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/config"
)

// batchCounter counts Graph $batch calls going through it.
type batchCounter struct {
	n    atomic.Int64
	next http.RoundTripper
}

func (c *batchCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/$batch") {
		c.n.Add(1)
	}
	return c.next.RoundTrip(req)
}

// TestPostActionsBatchedAcrossAcks is issue 17 item 2: with small mails
// acknowledged one at a time, every acknowledgement's Notify sent a $batch
// holding only that one mail (about one request per message). Now a
// Notify moves only full batches of graph.MaxBatchSize; the rest waits for
// more acknowledgements or for the runner's deadline (its injected After).
// Nothing is moved before its 2xx, nothing is lost.
func TestPostActionsBatchedAcrossAcks(t *testing.T) {
	const n = 50 // two full batches and a remainder that only the deadline moves
	h := newHarness(t, m365sim.Options{})
	injectMany(h, simSupport, "Inbox/Support", n)
	counter := &batchCounter{next: http.DefaultTransport}
	h.client.HTTP = &http.Client{Transport: counter}
	ch := testChannel("support", config.MailboxShared, simSupport, "Inbox/Support")
	ch.AfterImport = config.AfterImport{Action: config.ActionDelete}
	ch.Archive.Mode = config.ArchiveOff
	ch.PollInterval = time.Hour // only the first round; the rest is Notify and the deadline
	r := h.runner(ch)

	var mu sync.Mutex
	var waits []time.Duration
	deadline := make(chan time.Time, 1)
	r.cfg.After = func(d time.Duration) <-chan time.Time {
		mu.Lock()
		waits = append(waits, d)
		mu.Unlock()
		return deadline
	}
	passes := make(chan int, 4*n) // buffered: the runner never blocks on the test
	r.cfg.afterPostPass = func(waiting int) { passes <- waiting }

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitUntil(t, "the first round", 20*time.Second, func() bool { return r.Status().Rounds >= 1 })
	if got := h.outboxLen(); got != n {
		t.Fatalf("queued %d, want %d", got, n)
	}
	before := counter.n.Load() // the round read, it moved nothing

	pass := func() int {
		t.Helper()
		select {
		case w := <-passes:
			return w
		case <-time.After(20 * time.Second): // safety net only
			t.Fatal("the runner did not finish a post-action pass")
			return 0
		}
	}
	// Invariant 1: whatever is in Deleted Items was acknowledged first.
	checkMovedDelivered := func() {
		t.Helper()
		for _, mi := range h.sim.Sim.Messages(simSupport, "Deleted Items") {
			if h.rec.count(h.eventID(simSupport, mi.ImmutableID)) == 0 {
				t.Fatalf("%q was moved before the receiver acknowledged it", mi.Subject)
			}
		}
	}
	for i := range n {
		if got := h.deliverN(context.Background(), 1); got != 1 {
			t.Fatalf("delivery %d acknowledged %d rows, want 1", i, got)
		}
		r.Notify()
		pass()
		checkMovedDelivered()
	}
	mu.Lock()
	armed := len(waits)
	mu.Unlock()
	if armed == 0 {
		t.Error("the runner never armed its deadline for the messages short of a full batch")
	} else {
		deadline <- time.Time{}
		pass()
	}
	checkMovedDelivered()

	if inFolder := len(h.sim.Sim.Messages(simSupport, "Inbox/Support")); inFolder != 0 {
		t.Errorf("folder holds %d after delete, want 0", inFolder)
	}
	if moved := len(h.sim.Sim.Messages(simSupport, "Deleted Items")); moved != n {
		t.Errorf("Deleted Items holds %d, want %d", moved, n)
	}
	c, err := h.db.LedgerCounts(context.Background(), "support")
	if err != nil {
		t.Fatal(err)
	}
	if c[store.LedgerDone] != n {
		t.Errorf("ledger = %v, want %d done", c, n)
	}
	batches := counter.n.Load() - before
	perMsg := float64(batches) / n
	t.Logf("delete, %d small mails acknowledged one at a time: %d $batch requests, %.3f per message", n, batches, perMsg)
	if want := int64((n + 19) / 20); batches > want {
		t.Errorf("$batch requests = %d (%.2f per message), want at most %d (full batches of 20 and one on the deadline)", batches, perMsg, want)
	}
}
