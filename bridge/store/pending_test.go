package store

import (
	"context"
	"strings"
	"testing"

	"github.com/m365bridge/m365bridge/webhooks/deliver"
)

// TestPendingBodyBytes: the pending bodies are summed per channel; a body
// leaves the sum when its row is delivered, dead or rejected (each of
// which closes PendingDropped's channel, after the commit) and comes back
// on a replay.
func TestPendingBodyBytes(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		db, now := b.openOutbox(t)
		q := db.Outbox()
		sizes := map[string]int{"a1": 1000, "a2": 3000, "b1": 500, "n1": 70}
		chans := map[string]string{"a1": "a", "a2": "a", "b1": "b", "n1": ""}
		for _, id := range []string{"a1", "a2", "b1", "n1"} {
			body := []byte(`"` + strings.Repeat("x", sizes[id]-2) + `"`)
			if err := db.Enqueue(ctx, OutboxEvent{EventID: id, Endpoint: "hd", Channel: chans[id], Type: "mail.received", Body: body}); err != nil {
				t.Fatal(err)
			}
		}
		check := func(what string, total int64, by map[string]int64) {
			t.Helper()
			p, err := db.PendingBodyBytes(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if p.Total != total {
				t.Errorf("%s: total %d, want %d", what, p.Total, total)
			}
			for ch, n := range by {
				if p.ByChannel[ch] != n {
					t.Errorf("%s: channel %q %d, want %d (all: %v)", what, ch, p.ByChannel[ch], n, p.ByChannel)
				}
			}
		}
		check("queued", 4570, map[string]int64{"a": 4000, "b": 500, "": 70})

		seqOf := map[string]int64{}
		due, err := q.DueMeta(ctx, "hd", *now, 10, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range due {
			seqOf[r.EventID] = r.Seq
		}
		sig := db.PendingDropped()
		select {
		case <-sig:
			t.Fatal("PendingDropped closed before anything left pending")
		default:
		}
		if err := q.MarkDelivered(ctx, seqOf["a2"], 200, *now); err != nil {
			t.Fatal(err)
		}
		select {
		case <-sig:
		default:
			t.Fatal("PendingDropped not closed after a delivery")
		}
		check("a2 delivered", 1570, map[string]int64{"a": 1000, "b": 500})

		sig = db.PendingDropped()
		if err := q.MarkDead(ctx, seqOf["b1"], 500, "down"); err != nil {
			t.Fatal(err)
		}
		if err := q.MarkRejected(ctx, seqOf["a1"], 400, "no"); err != nil {
			t.Fatal(err)
		}
		select {
		case <-sig:
		default:
			t.Fatal("PendingDropped not closed after a row went dead")
		}
		check("b1 dead, a1 rejected", 70, map[string]int64{"a": 0, "b": 0, "": 70})

		if n, err := q.Replay(ctx, deliver.Filter{Endpoint: "hd"}, *now); err != nil || n != 2 {
			t.Fatalf("Replay = %d, %v; want 2", n, err)
		}
		check("replayed", 1570, map[string]int64{"a": 1000, "b": 500})
	})
}
