package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

func newSend(id, key, hash string) Send {
	return Send{ID: id, Channel: "support", IdempotencyKey: key, RequestHash: hash, Request: []byte(`{"subject":"x"}`)}
}

func TestInsertSendIsIdempotentPerChannelKey(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		db, _ := b.openOutbox(t)
		ctx := context.Background()
		first, created, err := db.InsertSend(ctx, newSend("snd_1", "k1", "h1"), "")
		if err != nil || !created {
			t.Fatalf("first insert: created %v, err %v", created, err)
		}
		if first.State != SendQueued || first.ID != "snd_1" {
			t.Errorf("first row: %+v", first)
		}
		t.Run("same key same body", func(t *testing.T) {
			got, created, err := db.InsertSend(ctx, newSend("snd_2", "k1", "h1"), "")
			if err != nil || created {
				t.Fatalf("created %v, err %v; want the existing row", created, err)
			}
			if got.ID != "snd_1" {
				t.Errorf("got id %q, want the original snd_1", got.ID)
			}
		})
		t.Run("same key other body", func(t *testing.T) {
			got, _, err := db.InsertSend(ctx, newSend("snd_3", "k1", "h2"), "")
			if !errors.Is(err, ErrIdempotencyConflict) {
				t.Fatalf("err %v, want ErrIdempotencyConflict", err)
			}
			if got.ID != "snd_1" {
				t.Errorf("conflict returned %q, want snd_1", got.ID)
			}
		})
		t.Run("same key other channel", func(t *testing.T) {
			s := newSend("snd_4", "k1", "h1")
			s.Channel = "sales"
			if _, created, err := db.InsertSend(ctx, s, ""); err != nil || !created {
				t.Fatalf("created %v, err %v; keys are per channel", created, err)
			}
		})
		if _, err := db.SendByID(ctx, "sales", "snd_1"); !errors.Is(err, ErrNoSend) {
			t.Errorf("another channel's id: err %v, want ErrNoSend", err)
		}
	})
}

func TestSendLifecycle(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		db, now := b.openOutbox(t)
		ctx := context.Background()
		if _, _, err := db.InsertSend(ctx, newSend("snd_1", "k1", "h1"), ""); err != nil {
			t.Fatal(err)
		}
		due, err := db.DueSends(ctx, *now, 10)
		if err != nil || len(due) != 1 {
			t.Fatalf("due: %d rows, err %v; want 1", len(due), err)
		}
		recheck := now.Add(time.Minute)
		if err := db.MarkSending(ctx, "snd_1", 1, "reply", *now, recheck); err != nil {
			t.Fatal(err)
		}
		if due, _ := db.DueSends(ctx, *now, 10); len(due) != 0 {
			t.Errorf("a sending row is due before its recheck time: %+v", due)
		}
		if next, ok, _ := db.NextSendDue(ctx); !ok || !next.Equal(recheck) {
			t.Errorf("next due %v %v, want %v", next, ok, recheck)
		}
		if due, _ := db.DueSends(ctx, recheck, 10); len(due) != 1 || due[0].State != SendSending || due[0].Attempts != 1 || due[0].Method != "reply" {
			t.Errorf("after the recheck time: %+v, want the sending row", due)
		}
		ev := OutboxEvent{EventID: "evt_1", Endpoint: "helpdesk", Channel: "support", Type: "mail.sent", Body: []byte(`{}`)}
		if err := db.FinishSend(ctx, "snd_1", SendOutcome{State: SendSent, InternetMessageID: "<a@b>"}, ev); err != nil {
			t.Fatal(err)
		}
		got, err := db.SendByID(ctx, "support", "snd_1")
		if err != nil || got.State != SendSent || got.InternetMessageID != "<a@b>" || got.FinishedAt.IsZero() {
			t.Errorf("after finish: %+v, %v", got, err)
		}
		var events int
		db.Reader().QueryRow(`SELECT COUNT(*) FROM outbox WHERE event_id = 'evt_1'`).Scan(&events)
		if events != 1 {
			t.Errorf("%d outbox rows for the outcome, want 1", events)
		}
		if err := db.FinishSend(ctx, "snd_1", SendOutcome{State: SendFailed}, ev); err == nil {
			t.Error("a finished send was finished again")
		}
		if err := db.RetrySend(ctx, "snd_1", SendQueued, *now, ""); err == nil {
			t.Error("a finished send was put back in the queue")
		}
	})
}

func TestLedgerLookupsForReplies(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		db, _ := b.openOutbox(t)
		ctx := context.Background()
		err := db.Tx(ctx, func(tx *sql.Tx) error {
			_, err := db.InsertLedgerTx(ctx, tx, LedgerEntry{Channel: "support", MessageID: "AAMk1", InternetMessageID: "<q@example.com>",
				EventID: "msg_1", State: LedgerQueued, Kind: KindNew})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if e, err := db.LedgerByEventID(ctx, "support", "msg_1"); err != nil || e.MessageID != "AAMk1" {
			t.Errorf("by event id: %+v %v", e, err)
		}
		if e, err := db.LedgerByInternetMessageID(ctx, "support", "<q@example.com>"); err != nil || e.MessageID != "AAMk1" {
			t.Errorf("by internet message id: %+v %v", e, err)
		}
		if _, err := db.LedgerByEventID(ctx, "sales", "msg_1"); !errors.Is(err, ErrNoLedgerEntry) {
			t.Errorf("another channel's event: %v, want ErrNoLedgerEntry", err)
		}
	})
}

// TestInsertSendRemembersRequestIDs: a webhook-id answered once names its
// row whatever the idempotency key, is refused for another channel or
// body, and is forgotten only after SendRequestRetention.
func TestInsertSendRemembersRequestIDs(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		db, now := b.openOutbox(t)
		ctx := context.Background()
		if _, created, err := db.InsertSend(ctx, newSend("snd_1", "k1", "h1"), "req_1"); err != nil || !created {
			t.Fatalf("first insert: created %v, err %v", created, err)
		}
		got, created, err := db.InsertSend(ctx, newSend("snd_2", "k2", "h1"), "req_1")
		if err != nil || created || got.ID != "snd_1" {
			t.Errorf("same request under a new key: %s created %v err %v; want snd_1, not created", got.ID, created, err)
		}
		other := newSend("snd_3", "k3", "h1")
		other.Channel = "sales"
		for name, s := range map[string]Send{"other channel": other, "other body": newSend("snd_4", "k4", "h2")} {
			got, created, err := db.InsertSend(ctx, s, "req_1")
			if !errors.Is(err, ErrRequestIDReused) || created || got.ID != "snd_1" {
				t.Errorf("%s: %s created %v err %v; want ErrRequestIDReused naming snd_1", name, got.ID, created, err)
			}
		}
		if err := db.RememberSendRequest(ctx, "req_2", "snd_1"); err != nil {
			t.Fatal(err)
		}
		if got, err := db.SendByRequestID(ctx, "req_2"); err != nil || got.ID != "snd_1" {
			t.Errorf("a retry's id: %s %v, want snd_1", got.ID, err)
		}
		*now = now.Add(SendRequestRetention - time.Second)
		if _, err := db.SendByRequestID(ctx, "req_1"); err != nil {
			t.Errorf("an id within the retention: %v", err)
		}
		*now = now.Add(2 * time.Second)
		if _, _, err := db.InsertSend(ctx, newSend("snd_5", "k5", "h5"), "req_3"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.SendByRequestID(ctx, "req_1"); !errors.Is(err, ErrNoSend) {
			t.Errorf("an id past the retention: %v, want ErrNoSend", err)
		}
		if got, err := db.SendByRequestID(ctx, "req_3"); err != nil || got.ID != "snd_5" {
			t.Errorf("a fresh id: %s %v", got.ID, err)
		}
		var n int
		db.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM sends`).Scan(&n)
		if n != 2 {
			t.Errorf("%d send rows, want 2 (snd_1, snd_5)", n)
		}
	})
}

// TestInsertSendConcurrentReplays: a request and its replays under new keys
// arriving at once create one row; every caller gets that row.
func TestInsertSendConcurrentReplays(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		db, _ := b.openOutbox(t)
		ctx := context.Background()
		const n = 8
		var wg sync.WaitGroup
		ids := make([]string, n)
		created := make([]bool, n)
		errs := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var s Send
				s, created[i], errs[i] = db.InsertSend(ctx, newSend(fmt.Sprintf("snd_%d", i), fmt.Sprintf("key-%d", i), "h1"), "req_same")
				ids[i] = s.ID
			}()
		}
		wg.Wait()
		var made int
		for i := range n {
			if errs[i] != nil {
				t.Errorf("insert %d: %v", i, errs[i])
			}
			if created[i] {
				made++
			}
			if ids[i] != ids[0] {
				t.Errorf("insert %d got %s, insert 0 got %s: want one row for all", i, ids[i], ids[0])
			}
		}
		if made != 1 {
			t.Errorf("%d rows created for one signed request, want 1", made)
		}
	})
}
