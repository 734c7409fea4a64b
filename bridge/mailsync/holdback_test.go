package mailsync

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/m365sim"
	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/webhooks/deliver"
)

// The hold-back tests drive the real runner, store (a SQLite file) and
// simulator; the test is the dispatcher: it delivers only when the runner
// says it holds the import back (RunnerConfig.onHold), so every figure is
// decided by signals, never by timing.

const holdFolder = "Inbox/Hold"

// holdSafety is the safety net of a held import: far above the second or
// so these imports take under -race.
const holdSafety = 60 * time.Second

// injectHold puts n messages of about size body bytes into mailbox's
// holdFolder and returns their immutable ids.
func injectHold(h *harness, mailbox string, n, size int) []string {
	h.t.Helper()
	ids := make([]string, n)
	for i := range n {
		mi := h.inject(mailbox, m365sim.NewMessage{Folder: holdFolder, Subject: fmt.Sprintf("hold %d", i),
			From: "customer@example.net", Body: fmt.Sprintf("%04d ", i) + strings.Repeat("lorem ipsum ", size/12)})
		ids[i] = mi.ImmutableID
	}
	return ids
}

// heldRound runs one SyncOnce of r and, each time r waits for deliveries
// while held back, delivers up to perHold due rows of endpoint (the
// channel's webhook), as a dispatcher that keeps up slower than Graph is
// read would. It returns the pending bodies seen at each hold (each
// measurement that held the import back), after the round.
func heldRound(t *testing.T, h *harness, rc RunnerConfig, endpoint string, perHold int) ([]store.PendingBodies, Stats) {
	t.Helper()
	holds := make(chan store.PendingBodies)
	awaits := make(chan struct{})
	rc.onHold = func(p store.PendingBodies) { holds <- p }
	rc.onAwait = func() { awaits <- struct{}{} }
	r := NewRunner(rc)
	ctx, cancel := context.WithTimeout(context.Background(), holdSafety)
	defer cancel()
	type result struct {
		stats Stats
		err   error
	}
	done := make(chan result, 1)
	go func() {
		st, err := r.SyncOnce(ctx)
		done <- result{st, err}
	}()
	var seen []store.PendingBodies
	for {
		select {
		case p := <-holds:
			seen = append(seen, p)
		case <-awaits:
			// The held runner waits for deliveries (it measures again
			// once enough bytes left pending). A wait may follow a hold
			// that earlier deliveries already ended; then there is
			// nothing to deliver.
			h.deliverEndpoint(ctx, endpoint, perHold)
		case res := <-done:
			if res.err != nil {
				t.Fatalf("SyncOnce: %v (holds so far: %d)", res.err, len(seen))
			}
			return seen, res.stats
		}
	}
}

// maxBody is the largest event body queued for channel.
func maxBody(t *testing.T, h *harness, channel string) int64 {
	t.Helper()
	rows, err := h.db.Outbox().List(context.Background(), deliver.Filter{Channel: channel, WithBody: true})
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, r := range rows {
		n = max(n, int64(len(r.Body)))
	}
	return n
}

// checkDeliveredOnce fails unless the receiver got every id's event
// exactly once.
func checkDeliveredOnce(t *testing.T, h *harness, mailbox string, ids []string) {
	t.Helper()
	for _, id := range ids {
		if got := h.rec.count(h.eventID(mailbox, id)); got != 1 {
			t.Errorf("message %s delivered %d times, want once", id, got)
		}
	}
}

// TestHoldBackWaitsForDeliveries is issue 17's bounded state directory: an
// import of 40 messages, read faster than delivered, waits before each
// page while the pending bodies exceed the budget (about two pages) and
// goes on as the dispatcher delivers: the pending bodies never exceed the
// budget by more than one page, and every message is delivered exactly
// once. Without a hold-back the same import leaves them all pending.
func TestHoldBackWaitsForDeliveries(t *testing.T) {
	const n, size, pageSize = 40, 3000, 5
	for _, tc := range []struct {
		name string
		hold bool
	}{{"held back", true}, {"without hold-back the same import overflows", false}} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, m365sim.Options{})
			ids := injectHold(h, simSupport, n, size)
			ch := testChannel("support", "shared", simSupport, holdFolder)
			rc := h.runnerConfig(ch)
			rc.PageSize = pageSize
			// About two pages of events (each about 2.5 size bytes: html
			// and text); the dispatcher delivers 3 rows per hold.
			budget := int64(5 * pageSize * size)
			if tc.hold {
				rc.HoldBack = NewHoldBack(budget)
			}
			seen, stats := heldRound(t, h, rc, "helpdesk", 3)
			if stats.Queued != n {
				t.Fatalf("queued %d, want %d", stats.Queued, n)
			}
			page := pageSize * maxBody(t, h, "support")
			p, err := h.db.PendingBodyBytes(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			seen = append(seen, p) // at the end of the round
			var most int64
			for _, s := range seen {
				most = max(most, s.Total)
			}
			t.Logf("budget %d, page %d bytes, %d holds, most pending %d, at the end %d", budget, page, len(seen)-1, most, p.Total)
			if !tc.hold {
				if most <= budget+page {
					t.Fatalf("without hold-back the import left at most %d pending bytes, want over %d (the test does not overflow)", most, budget+page)
				}
				return
			}
			if len(seen) < 3 {
				t.Errorf("held back %d times, want several (each page past the budget)", len(seen)-1)
			}
			if most > budget+page {
				t.Errorf("pending bodies reached %d bytes, want at most the budget %d plus a page %d", most, budget, page)
			}
			h.deliver(context.Background())
			checkDeliveredOnce(t, h, simSupport, ids)
			if d := h.rec.distinct(); d != n {
				t.Errorf("receiver got %d distinct events, want %d", d, n)
			}
		})
	}
}

// TestHoldBackDeadEndpointDoesNotStarveOthers is the 3 a.m. case: channel
// A's endpoint is down and its pending bodies fill the budget; A waits,
// while channel B (another endpoint, healthy) imports and delivers all its
// mail. When A's endpoint is back, A's import resumes where its cursor
// stood: nothing lost, nothing twice.
func TestHoldBackDeadEndpointDoesNotStarveOthers(t *testing.T) {
	const n, size, pageSize = 30, 3000, 5
	h := newHarness(t, m365sim.Options{})
	idsA := injectHold(h, simAgent, n, size)
	idsB := injectHold(h, simSupport, n, size)
	hb := NewHoldBack(int64(5 * pageSize * size)) // about two pages
	for _, c := range []string{"a", "b"} {        // as Run does for each running runner
		defer hb.join(c)()
	}

	chA := testChannel("a", "user", simAgent, holdFolder)
	chA.Webhook = "down" // nobody delivers it: its endpoint is down
	rcA := h.runnerConfig(chA)
	rcA.PageSize, rcA.HoldBack = pageSize, hb
	heldA := make(chan store.PendingBodies, 1)
	rcA.onHold = func(p store.PendingBodies) {
		select {
		case heldA <- p:
		default:
		}
	}
	ctxA, cancelA := context.WithTimeout(context.Background(), holdSafety)
	defer cancelA()
	doneA := make(chan error, 1)
	rA := NewRunner(rcA)
	go func() {
		_, err := rA.SyncOnce(ctxA)
		doneA <- err
	}()
	var pA store.PendingBodies
	select {
	case pA = <-heldA:
	case err := <-doneA:
		t.Fatalf("A's import ended (%v) without being held back", err)
	}
	if pA.Total <= hb.Budget() {
		t.Fatalf("A held back at %d pending bytes, within the budget %d", pA.Total, hb.Budget())
	}

	chB := testChannel("b", "shared", simSupport, holdFolder)
	rcB := h.runnerConfig(chB)
	rcB.PageSize, rcB.HoldBack = pageSize, hb
	seenB, stats := heldRound(t, h, rcB, "helpdesk", pageSize)
	if stats.Queued != n {
		t.Fatalf("B queued %d, want %d while A is held back", stats.Queued, n)
	}
	for _, p := range seenB {
		// B waits only once it holds its fair share (half the budget).
		if share := hb.Budget() / 2; p.ByChannel["b"] < share {
			t.Errorf("B held back with %d bytes of its own pending, below its share %d (A: %d)", p.ByChannel["b"], share, p.ByChannel["a"])
		}
	}
	h.deliverEndpoint(context.Background(), "helpdesk", n)
	checkDeliveredOnce(t, h, simSupport, idsB)
	if st := rA.Status(); st.HeldBack == nil || st.HeldBack.BudgetBytes != hb.Budget() {
		t.Errorf("A's status while held back: %+v, want HeldBack with the budget", st.HeldBack)
	}

	// A's endpoint comes back after the day: its import goes on from its
	// committed cursor.
	cancelA()
	if err := <-doneA; !errors.Is(err, context.Canceled) {
		t.Fatalf("A's held round ended with %v, want context.Canceled", err)
	}
	if st := rA.Status(); st.HeldBack != nil {
		t.Errorf("A's status after the wait: HeldBack %+v, want none", st.HeldBack)
	}
	h.deliverEndpoint(context.Background(), "down", 2*n)
	rcA.onHold = nil
	heldRound(t, h, rcA, "down", pageSize)
	h.deliverEndpoint(context.Background(), "down", 2*n)
	checkDeliveredOnce(t, h, simAgent, idsA)
	if d := h.rec.distinct(); d != 2*n {
		t.Errorf("receiver got %d distinct events, want %d", d, 2*n)
	}
}

// TestHoldBackPageHeavierThanBudget: a page heavier than the whole budget
// still imports, alone, once the channel's earlier events are delivered,
// also with state_budget_bytes 0 and another channel's event stuck
// pending (its endpoint down): a channel with nothing pending of its own
// never waits.
func TestHoldBackPageHeavierThanBudget(t *testing.T) {
	const n, size, pageSize = 9, 4000, 3
	for _, budget := range []int64{1000, 0} {
		t.Run(fmt.Sprint("budget ", budget), func(t *testing.T) {
			h := newHarness(t, m365sim.Options{})
			ids := injectHold(h, simSupport, n, size)
			if err := h.db.Enqueue(context.Background(), store.OutboxEvent{EventID: "evt_stuck", Endpoint: "down", Channel: "other",
				Type: "channel.error", Body: []byte(`{"pad":"` + strings.Repeat("x", 2000) + `"}`)}); err != nil {
				t.Fatal(err)
			}
			hb := NewHoldBack(budget)
			for _, c := range []string{"support", "other", "third"} {
				defer hb.join(c)()
			}
			rc := h.runnerConfig(testChannel("support", "shared", simSupport, holdFolder))
			rc.PageSize, rc.HoldBack = pageSize, hb
			seen, stats := heldRound(t, h, rc, "helpdesk", 100)
			if stats.Queued != n {
				t.Fatalf("queued %d, want %d", stats.Queued, n)
			}
			page := pageSize * maxBody(t, h, "support")
			if page <= budget {
				t.Fatalf("a page weighs %d bytes, not more than the budget %d: the test proves nothing", page, budget)
			}
			for _, p := range seen {
				if p.ByChannel["support"] > page {
					t.Errorf("held back with %d bytes of the channel pending, more than one page (%d)", p.ByChannel["support"], page)
				}
			}
			if len(seen) < n/pageSize-1 {
				t.Errorf("held back %d times, want one per page but the last", len(seen))
			}
			h.deliver(context.Background())
			checkDeliveredOnce(t, h, simSupport, ids)
		})
	}
}

// TestHoldBackMeasuresOnlyWhenItCanResume: a held runner sums the pending
// bodies again only once enough bytes left pending to change its answer,
// not at every delivery (with thousands pending, a sum per delivery was
// most of a 40,000-mail import's extra CPU). One row delivered per wait:
// far fewer measurements than deliveries.
func TestHoldBackMeasuresOnlyWhenItCanResume(t *testing.T) {
	const n, size, pageSize = 60, 3000, 5
	h := newHarness(t, m365sim.Options{})
	ids := injectHold(h, simSupport, n, size)
	rc := h.runnerConfig(testChannel("support", "shared", simSupport, holdFolder))
	rc.PageSize = pageSize
	rc.HoldBack = NewHoldBack(int64(5 * pageSize * size))
	seen, stats := heldRound(t, h, rc, "helpdesk", 1)
	if stats.Queued != n {
		t.Fatalf("queued %d, want %d", stats.Queued, n)
	}
	delivered := h.rec.distinct() // during the round, one per wait
	t.Logf("%d measurements that held the import back, %d deliveries while held", len(seen), delivered)
	if len(seen) == 0 || delivered == 0 {
		t.Fatalf("held %d times with %d deliveries: the test holds nothing back", len(seen), delivered)
	}
	if 2*len(seen) > delivered {
		t.Errorf("%d measurements for %d deliveries: the held runner sums the pending bodies at (nearly) every delivery", len(seen), delivered)
	}
	h.deliver(context.Background())
	checkDeliveredOnce(t, h, simSupport, ids)
}
