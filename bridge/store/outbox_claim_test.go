package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/webhooks/deliver"
)

// TestOutboxClaimsNeverShareARow: several daemons claim due rows of one
// outbox at once, each many times; no row is ever held by two of them at
// the same time (every claimed row is claimed once), and all are claimed.
func TestOutboxClaimsNeverShareARow(t *testing.T) {
	for _, ordered := range []bool{false, true} {
		t.Run(fmt.Sprintf("ordered=%v", ordered), func(t *testing.T) {
			t.Parallel()
			db, now := backends[1].openOutbox(t)
			ctx := context.Background()
			var events []OutboxEvent
			for i := range 60 {
				events = append(events, ev(fmt.Sprintf("e%02d", i), fmt.Sprintf("ch%d", i%12)))
			}
			if err := db.Enqueue(ctx, events...); err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			owner := map[int64]string{}
			var wg sync.WaitGroup
			var errs []error // under mu
			fail := func(err error) {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
			for d := range 4 {
				q := db.ClaimingOutbox(OutboxHooks{}, fmt.Sprintf("daemon-%d", d), time.Minute)
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range 30 {
						rows, err := q.Due(ctx, "helpdesk", *now, 3, ordered)
						if err != nil {
							fail(err)
							return
						}
						mu.Lock()
						for _, r := range rows {
							if prev, dup := owner[r.Seq]; dup {
								errs = append(errs, fmt.Errorf("row %d claimed by %s and %s", r.Seq, prev, q.claimer))
							}
							owner[r.Seq] = q.claimer
						}
						mu.Unlock()
						// Ordered: finish what was claimed so the next heads come up.
						for _, r := range rows {
							if ordered {
								if err := q.MarkDelivered(ctx, r.Seq, 200, *now); err != nil {
									fail(err)
									return
								}
							}
						}
					}
				}()
			}
			wg.Wait()
			for _, err := range errs[:min(len(errs), 5)] {
				t.Error(err)
			}
			if len(owner) != 60 {
				t.Errorf("%d rows claimed, want all 60", len(owner))
			}
		})
	}
}

// TestOutboxClaimExpiresAndOrderHolds: a claim hides a row from others until
// it runs out, then another daemon takes it; the first daemon's late
// results are refused; on an ordered endpoint a claimed head blocks its
// channel's next row.
func TestOutboxClaimExpiresAndOrderHolds(t *testing.T) {
	db, now := backends[1].openOutbox(t)
	ctx := context.Background()
	if err := db.Enqueue(ctx, ev("a1", "A"), ev("a2", "A"), ev("b1", "B")); err != nil {
		t.Fatal(err)
	}
	acked := map[string]int{}
	var mu sync.Mutex
	hooks := OutboxHooks{Delivered: func(_ context.Context, _ *sql.Tx, id, _ string) error {
		mu.Lock()
		acked[id]++
		mu.Unlock()
		return nil
	}}
	x := db.ClaimingOutbox(hooks, "daemon-x", 150*time.Millisecond)
	y := db.ClaimingOutbox(hooks, "daemon-y", time.Minute)

	got, err := x.Due(ctx, "helpdesk", *now, 10, true)
	if err != nil || seqs(got) != "a1 b1 " {
		t.Fatalf("x claims heads = %q, %v; want a1 b1", seqs(got), err)
	}
	if err := x.MarkAttempt(ctx, got[0].Seq, 1, *now, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	// y sees nothing: both heads are claimed, and a2 is not a head.
	if other, err := y.Due(ctx, "helpdesk", *now, 10, true); err != nil || len(other) != 0 {
		t.Fatalf("y while x holds the heads = %q, %v; want nothing", seqs(other), err)
	}
	// x finishes b1; x's claim on a1 then runs out (x paused past it).
	if err := x.MarkDelivered(ctx, got[1].Seq, 200, *now); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	var taken []deliver.Row
	for len(taken) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("a1's claim never ran out")
		}
		time.Sleep(10 * time.Millisecond) // pacing of the poll; the claim lasts 150 ms
		if taken, err = y.Due(ctx, "helpdesk", now.Add(time.Hour), 10, true); err != nil {
			t.Fatal(err)
		}
	}
	if seqs(taken) != "a1 " {
		t.Fatalf("y after x's claim ran out = %q, want a1 (the head; a2 waits)", seqs(taken))
	}
	// x's late success is void: y holds the row now.
	if err := x.MarkDelivered(ctx, got[0].Seq, 200, *now); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("x's late MarkDelivered = %v, want ErrLeaseLost", err)
	}
	if err := x.MarkAttempt(ctx, got[0].Seq, 2, *now, *now); !errors.Is(err, deliver.ErrNotPending) {
		t.Fatalf("x's late MarkAttempt = %v, want ErrNotPending", err)
	}
	if err := y.MarkDelivered(ctx, taken[0].Seq, 200, *now); err != nil {
		t.Fatal(err)
	}
	next, err := y.Due(ctx, "helpdesk", now.Add(time.Hour), 10, true)
	if err != nil || seqs(next) != "a2 " {
		t.Fatalf("after a1 = %q, %v; want a2", seqs(next), err)
	}
	if acked["a1"] != 1 || acked["b1"] != 1 {
		t.Errorf("acks = %v, want a1 and b1 once each", acked)
	}
}
