package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/webhooks/deliver"
)

// DueMeta hands the dispatcher due rows without their bodies (only their
// sizes, which it claims from its byte budget) and leaves out the rows in
// flight; Body reads one body. On both backends, claiming or not.
func TestDueMetaSkipsInFlightAndReadsNoBody(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		db, now := b.openOutbox(t)
		ctx := context.Background()
		if err := db.Enqueue(ctx, ev("a1", "A"), ev("b1", "B"), ev("a2", "A")); err != nil {
			t.Fatal(err)
		}
		for name, q := range map[string]*Outbox{"plain": db.Outbox(), "claiming": db.ClaimingOutbox(OutboxHooks{}, "d1", 0)} {
			all, err := q.DueMeta(ctx, "helpdesk", *now, 10, false, nil)
			if err != nil || len(all) != 3 {
				t.Fatalf("%s: DueMeta = %v, %v; want 3 rows", name, all, err)
			}
			for _, r := range all {
				if r.Body != nil || r.BodySize != int64(len(ev(r.EventID, "").Body)) {
					t.Errorf("%s: %s: body %q size %d, want no body and size %d", name, r.EventID, r.Body, r.BodySize, len(ev(r.EventID, "").Body))
				}
				body, err := q.Body(ctx, r.Seq)
				if err != nil || string(body) != string(ev(r.EventID, "").Body) {
					t.Errorf("%s: Body(%s) = %q, %v", name, r.EventID, body, err)
				}
			}
			// Claims of no visibility have run out by the next statement.
			*now = now.Add(time.Hour)
			if got, err := q.DueMeta(ctx, "helpdesk", *now, 10, false, []int64{all[0].Seq, all[2].Seq}); err != nil || seqs(got) != "b1 " {
				t.Errorf("%s: unordered DueMeta skipping a1, a2 = %q, %v; want b1", name, seqs(got), err)
			}
			*now = now.Add(time.Hour)
			// a1 in flight: channel A has no other head; B's head goes.
			if got, err := q.DueMeta(ctx, "helpdesk", *now, 10, true, []int64{all[0].Seq}); err != nil || seqs(got) != "b1 " {
				t.Errorf("%s: ordered DueMeta skipping a1 = %q, %v; want b1", name, seqs(got), err)
			}
			*now = now.Add(time.Hour)
		}
		if _, err := db.Outbox().Body(ctx, 1<<40); !errors.Is(err, deliver.ErrNotPending) {
			t.Errorf("Body of a missing row: %v, want ErrNotPending", err)
		}
	})
}
