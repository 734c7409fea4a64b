package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/webhooks/deliver"
)

func openOutboxDB(t *testing.T) (*DB, *time.Time) {
	t.Helper()
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), FileName))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	now := testEpoch(t)
	db.Now = func() time.Time { return now }
	return db, &now
}

func ev(id, channel string) OutboxEvent {
	return OutboxEvent{EventID: id, Endpoint: "helpdesk", Channel: channel, Type: "mail.received", Body: []byte(`{"id":"` + id + `"}`)}
}

func seqs(rows []deliver.Row) string {
	s := ""
	for _, r := range rows {
		s += fmt.Sprintf("%s ", r.EventID)
	}
	return s
}

func TestEnqueueTxIsIdempotentInCallerTransaction(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		db, _ := b.openOutbox(t)
		ctx := context.Background()
		err := db.Tx(ctx, func(tx *sql.Tx) error {
			for _, e := range []OutboxEvent{ev("msg_a", "c1"), ev("msg_a", "c1"), ev("msg_b", "c1")} {
				if err := db.EnqueueTx(ctx, tx, e); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// Again, in a transaction that then fails: nothing of it stays.
		err = db.Tx(ctx, func(tx *sql.Tx) error {
			if err := db.EnqueueTx(ctx, tx, ev("msg_c", "c1")); err != nil {
				return err
			}
			return errors.New("page failed")
		})
		if err == nil {
			t.Fatal("want the caller's error")
		}
		if err := db.Enqueue(ctx, ev("msg_a", "c1")); err != nil {
			t.Fatal(err)
		}
		rows, err := db.Outbox().List(ctx, deliver.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := seqs(rows), "msg_a msg_b "; got != want {
			t.Errorf("outbox holds %q, want %q", got, want)
		}
		// The same event for another endpoint is another row.
		other := ev("msg_a", "c1")
		other.Endpoint = "archive"
		if err := db.Enqueue(ctx, other); err != nil {
			t.Fatal(err)
		}
		if rows, _ := db.Outbox().List(ctx, deliver.Filter{IDs: []string{"msg_a"}}); len(rows) != 2 {
			t.Errorf("msg_a rows: %d, want 2 (one per endpoint)", len(rows))
		}
		if err := db.Enqueue(ctx, OutboxEvent{EventID: "x"}); err == nil {
			t.Error("enqueue without endpoint, type and body: no error")
		}
	})
}

func TestOutboxDueOrderedHeads(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		db, now := b.openOutbox(t)
		ctx := context.Background()
		q := db.Outbox()
		if err := db.Enqueue(ctx, ev("a1", "A"), ev("b1", "B"), ev("a2", "A"), ev("b2", "B")); err != nil {
			t.Fatal(err)
		}
		due := func(ordered bool) string {
			rows, err := q.Due(ctx, "helpdesk", *now, 10, ordered)
			if err != nil {
				t.Fatal(err)
			}
			return seqs(rows)
		}
		if got, want := due(true), "a1 b1 "; got != want {
			t.Errorf("ordered Due = %q, want %q", got, want)
		}
		if got, want := due(false), "a1 b1 a2 b2 "; got != want {
			t.Errorf("unordered Due = %q, want %q", got, want)
		}
		rows, _ := q.Due(ctx, "helpdesk", *now, 1, true)
		a1 := rows[0]
		// a1 in flight: attempt recorded, next in 5 s. A's next row must wait.
		if err := q.MarkAttempt(ctx, a1.Seq, 1, *now, now.Add(5*time.Second)); err != nil {
			t.Fatal(err)
		}
		if got, want := due(true), "b1 "; got != want {
			t.Errorf("ordered Due with a1 in flight = %q, want %q", got, want)
		}
		next, ok, err := q.NextDue(ctx, "helpdesk", true)
		if err != nil || !ok || !next.Equal(*now) {
			t.Errorf("NextDue = %v %v %v, want now (b1)", next, ok, err)
		}
		if err := q.MarkDelivered(ctx, a1.Seq, 204, *now); err != nil {
			t.Fatal(err)
		}
		if got, want := due(true), "b1 a2 "; got != want {
			t.Errorf("ordered Due after a1 delivered = %q, want %q", got, want)
		}
		if err := q.MarkAttempt(ctx, a1.Seq, 2, *now, *now); !errors.Is(err, deliver.ErrNotPending) {
			t.Errorf("MarkAttempt on a delivered row: %v, want ErrNotPending", err)
		}
		if _, ok, _ := q.NextDue(ctx, "nobody", true); ok {
			t.Error("NextDue of an endpoint without rows: ok")
		}
	})
}

func TestOutboxAckHookSharesTransaction(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		db, now := b.openOutbox(t)
		ctx := context.Background()
		if _, err := db.write.ExecContext(ctx, `CREATE TABLE acks (event_id TEXT, channel TEXT)`); err != nil {
			t.Fatal(err)
		}
		failAck := true
		ack := func(ctx context.Context, tx *sql.Tx, eventID, channel string) error {
			if _, err := tx.ExecContext(ctx, `INSERT INTO acks VALUES (?, ?)`, eventID, channel); err != nil {
				return err
			}
			if failAck {
				return errors.New("ledger unavailable")
			}
			return nil
		}
		var failed []string
		fail := func(ctx context.Context, tx *sql.Tx, eventID, channel string, state deliver.State, reason string) error {
			failed = append(failed, eventID+":"+string(state)+":"+reason)
			return nil
		}
		q := db.OutboxWith(OutboxHooks{Delivered: ack, Failed: fail})
		if err := db.Enqueue(ctx, ev("m1", "c"), ev("m2", "c"), ev("m3", "c")); err != nil {
			t.Fatal(err)
		}
		rows, _ := q.List(ctx, deliver.Filter{})
		if err := q.MarkDelivered(ctx, rows[0].Seq, 200, *now); err == nil {
			t.Fatal("MarkDelivered with a failing hook: no error")
		}
		countAcks := func() int {
			var n int
			db.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM acks`).Scan(&n)
			return n
		}
		if got, _ := q.List(ctx, deliver.Filter{IDs: []string{"m1"}}); got[0].State != deliver.StatePending || countAcks() != 0 {
			t.Errorf("after a failed hook: state %s, %d acks; want pending and 0 (rolled back together)", got[0].State, countAcks())
		}
		failAck = false
		if err := q.MarkDelivered(ctx, rows[0].Seq, 200, *now); err != nil {
			t.Fatal(err)
		}
		if got, _ := q.List(ctx, deliver.Filter{IDs: []string{"m1"}}); got[0].State != deliver.StateDelivered || countAcks() != 1 {
			t.Errorf("after delivery: state %s, %d acks; want delivered and 1", got[0].State, countAcks())
		}
		// A second success (late, after a replay raced it) acknowledges nothing twice.
		if err := q.MarkDelivered(ctx, rows[0].Seq, 200, *now); err != nil || countAcks() != 1 {
			t.Errorf("second MarkDelivered: %v, %d acks, want nil and 1", err, countAcks())
		}
		long := string(make([]byte, 5000))
		if err := q.MarkRejected(ctx, rows[1].Seq, 400, "bad request"); err != nil {
			t.Fatal(err)
		}
		if err := q.MarkDead(ctx, rows[2].Seq, 503, long); err != nil {
			t.Fatal(err)
		}
		if len(failed) != 2 || failed[0] != "m2:rejected:bad request" {
			t.Errorf("fail hooks saw %q", failed)
		}
		got, _ := q.List(ctx, deliver.Filter{IDs: []string{"m3"}})
		if got[0].State != deliver.StateDead || len(got[0].LastError) > outboxErrorBytes {
			t.Errorf("m3: state %s, last_error %d bytes; want dead, ≤ %d", got[0].State, len(got[0].LastError), outboxErrorBytes)
		}
	})
}

func TestOutboxListReplayRetire(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		db, now := b.openOutbox(t)
		ctx := context.Background()
		q := db.Outbox()
		start := *now
		for i, c := range []string{"A", "A", "B", "B"} {
			*now = start.Add(time.Duration(i) * time.Hour)
			if err := db.Enqueue(ctx, ev(fmt.Sprintf("m%d", i), c)); err != nil {
				t.Fatal(err)
			}
		}
		rows, _ := q.List(ctx, deliver.Filter{})
		q.MarkAttempt(ctx, rows[0].Seq, 3, *now, *now)
		q.MarkDead(ctx, rows[0].Seq, 503, "down")
		q.MarkRejected(ctx, rows[1].Seq, 400, "bad")
		q.MarkDead(ctx, rows[2].Seq, 503, "down")
		q.MarkDelivered(ctx, rows[3].Seq, 204, *now)

		list := func(f deliver.Filter) string {
			rows, err := q.List(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			return seqs(rows)
		}
		tests := []struct {
			name string
			f    deliver.Filter
			want string
		}{
			{"dead", deliver.Filter{States: []deliver.State{deliver.StateDead}}, "m0 m2 "},
			{"channel A", deliver.Filter{Channel: "A"}, "m0 m1 "},
			{"time range", deliver.Filter{Since: start.Add(time.Hour), Until: start.Add(3 * time.Hour)}, "m1 m2 "},
			{"limit", deliver.Filter{Limit: 1}, "m0 "},
			{"other endpoint", deliver.Filter{Endpoint: "other"}, ""},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if got := list(tt.f); got != tt.want {
					t.Errorf("List = %q, want %q", got, tt.want)
				}
			})
		}

		if _, err := q.Replay(ctx, deliver.Filter{States: []deliver.State{deliver.StateDelivered}}, *now); err == nil {
			t.Error("replay of delivered rows: no error")
		}
		*now = start.Add(10 * time.Hour)
		n, err := q.Replay(ctx, deliver.Filter{Channel: "A"}, *now)
		if err != nil || n != 2 {
			t.Fatalf("Replay channel A = %d, %v; want 2", n, err)
		}
		got, _ := q.List(ctx, deliver.Filter{IDs: []string{"m0"}})
		if r := got[0]; r.State != deliver.StatePending || r.Attempts != 0 || !r.NextAttemptAt.Equal(*now) || !r.ReplayedAt.Equal(*now) || r.EventID != "m0" {
			t.Errorf("replayed row = %+v", r)
		}
		if got[0].AgeBase() != *now {
			t.Errorf("AgeBase after replay = %v, want the replay time", got[0].AgeBase())
		}
		if n, _ := q.Replay(ctx, deliver.Filter{IDs: []string{"m2", "m3"}}, *now); n != 1 {
			t.Errorf("Replay by ids m2 (dead), m3 (delivered) = %d, want 1", n)
		}

		if n, err := q.Retire(ctx, "helpdesk", start.Add(3*time.Hour)); err != nil || n != 0 {
			t.Errorf("Retire before the delivery = %d, %v; want 0", n, err)
		}
		if n, err := q.Retire(ctx, "helpdesk", start.Add(4*time.Hour)); err != nil || n != 1 {
			t.Errorf("Retire after the delivery = %d, %v; want 1", n, err)
		}
		counts, err := q.Counts(ctx)
		if err != nil || counts["helpdesk"][deliver.StatePending] != 3 {
			t.Errorf("Counts = %v, %v; want 3 pending", counts, err)
		}
	})
}

func TestOutboxEndpointState(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		db, now := b.openOutbox(t)
		ctx := context.Background()
		q := db.Outbox()
		st, err := q.Endpoint(ctx, "helpdesk")
		if err != nil || st.State != deliver.EndpointActive {
			t.Fatalf("unknown endpoint = %+v, %v; want active", st, err)
		}
		if err := q.SetEndpoint(ctx, "helpdesk", deliver.EndpointDisabled, "410 Gone", *now); err != nil {
			t.Fatal(err)
		}
		// Persisted: a new handle on the same file sees it.
		db2 := b.reopen(t, db)
		st, err = db2.Outbox().Endpoint(ctx, "helpdesk")
		if err != nil || st.State != deliver.EndpointDisabled || st.Reason != "410 Gone" || !st.Since.Equal(*now) {
			t.Errorf("after reopen = %+v, %v", st, err)
		}
	})
}
