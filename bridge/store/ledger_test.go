package store

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"
)

func TestLedgerInsertIsIdempotent(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		db, _ := b.open(t), ""
		ctx := context.Background()
		e := LedgerEntry{Channel: "support", MessageID: "AAMk1", InternetMessageID: "<a@x>", EventID: "msg_1",
			State: LedgerQueued, Kind: KindNew, ReceivedAt: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)}
		var first, second bool
		err := db.Tx(ctx, func(tx *sql.Tx) (err error) {
			first, err = db.InsertLedgerTx(ctx, tx, e)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		changed := e
		changed.EventID = "msg_other"
		err = db.Tx(ctx, func(tx *sql.Tx) (err error) {
			second, err = db.InsertLedgerTx(ctx, tx, changed)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if !first || second {
			t.Errorf("inserted = %v, %v; want true, false", first, second)
		}
		got, err := db.LedgerEntryByID(ctx, "support", "AAMk1")
		if err != nil {
			t.Fatal(err)
		}
		if got.EventID != "msg_1" || !got.ReceivedAt.Equal(e.ReceivedAt) || got.State != LedgerQueued {
			t.Errorf("row = %+v, want the first insert kept", got)
		}
		if _, err := db.LedgerEntryByID(ctx, "support", "nope"); !errors.Is(err, ErrNoLedgerEntry) {
			t.Errorf("missing row err = %v, want ErrNoLedgerEntry", err)
		}
		known, err := db.LedgerKnownTx(ctx, nil, "support", []string{"AAMk1", "AAMk2"})
		if err != nil {
			t.Fatal(err)
		}
		if !known["AAMk1"] || known["AAMk2"] {
			t.Errorf("known = %v", known)
		}
	})
}

func TestLedgerLifecycle(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		db, _ := b.open(t), ""
		ctx := context.Background()
		now := testEpoch(t)
		db.Now = func() time.Time { return now }
		err := db.Tx(ctx, func(tx *sql.Tx) error {
			for _, id := range []string{"m1", "m2", "m3"} {
				if _, err := db.InsertLedgerTx(ctx, tx, LedgerEntry{Channel: "c", MessageID: id, EventID: "ev_" + id,
					State: LedgerQueued, Kind: KindArchived}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		due, err := db.DeliveredDue(ctx, "c", now, 10)
		if err != nil || len(due) != 0 {
			t.Fatalf("due before delivery = %v, %v; want none", due, err)
		}
		err = db.Tx(ctx, func(tx *sql.Tx) error {
			if err := db.SetLedgerStateByEventTx(ctx, tx, "ev_m1", LedgerDelivered, ""); err != nil {
				return err
			}
			if err := db.SetLedgerStateByEventTx(ctx, tx, "ev_m2", LedgerDelivered, ""); err != nil {
				return err
			}
			return db.SetLedgerStateByEventTx(ctx, tx, "ev_m3", LedgerRejected, "422 from receiver")
		})
		if err != nil {
			t.Fatal(err)
		}
		due, err = db.DeliveredDue(ctx, "c", now, 10)
		if err != nil || len(due) != 2 {
			t.Fatalf("due = %v, %v; want m1 and m2", due, err)
		}
		err = db.RecordPostActions(ctx, "c", []PostActionResult{
			{MessageID: "m1"},
			{MessageID: "m2", Err: errors.New("503"), RetryAt: now.Add(time.Minute)},
		})
		if err != nil {
			t.Fatal(err)
		}
		due, _ = db.DeliveredDue(ctx, "c", now, 10)
		if len(due) != 0 {
			t.Errorf("due right after a failure = %v, want none (backoff)", due)
		}
		due, _ = db.DeliveredDue(ctx, "c", now.Add(time.Minute), 10)
		if len(due) != 1 || due[0].MessageID != "m2" || due[0].PostActionAttempts != 1 || due[0].LastError != "503" {
			t.Errorf("due after backoff = %+v, want m2 with one attempt", due)
		}
		// A late duplicate acknowledgement must not move done back.
		db.Tx(ctx, func(tx *sql.Tx) error { return db.SetLedgerStateByEventTx(ctx, tx, "ev_m1", LedgerDelivered, "") })
		counts, err := db.LedgerCounts(ctx, "c")
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]int{LedgerDone: 1, LedgerDelivered: 1, LedgerRejected: 1}
		for k, v := range want {
			if counts[k] != v {
				t.Errorf("count[%s] = %d, want %d (all %v)", k, counts[k], v, counts)
			}
		}
		rej, _ := db.LedgerEntryByID(ctx, "c", "m3")
		if rej.Reason != "422 from receiver" {
			t.Errorf("rejected reason = %q", rej.Reason)
		}
		// An operator replays the rejected event and the receiver takes it.
		db.Tx(ctx, func(tx *sql.Tx) error { return db.SetLedgerStateByEventTx(ctx, tx, "ev_m3", LedgerDelivered, "") })
		if e, _ := db.LedgerEntryByID(ctx, "c", "m3"); e.State != LedgerDelivered {
			t.Errorf("replayed rejected row = %s, want delivered", e.State)
		}
		if err := db.Tx(ctx, func(tx *sql.Tx) error { return db.SetLedgerStateByEventTx(ctx, tx, "ev_m1", "done", "") }); err == nil {
			t.Error("setting done by event: want an error")
		}
	})
}

func TestSyncState(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		db, _ := b.open(t), ""
		ctx := context.Background()
		s, err := db.SyncState(ctx, "c")
		if err != nil || s.Channel != "c" || s.DeltaLink != "" || s.ArchiveMode != "" {
			t.Fatalf("fresh state = %+v, %v", s, err)
		}
		if err := db.SetFolder(ctx, "c", "Inbox/Support", "F1"); err != nil {
			t.Fatal(err)
		}
		err = db.Tx(ctx, func(tx *sql.Tx) error {
			return db.AdvanceCursorTx(ctx, tx, "c", "https://g/next?1", PageCounts{Seen: 3, Archived: 2, New: 1}, false)
		})
		if err != nil {
			t.Fatal(err)
		}
		err = db.Tx(ctx, func(tx *sql.Tx) error {
			return db.AdvanceCursorTx(ctx, tx, "c", "https://g/delta?2", PageCounts{Seen: 1, Rejected: 1}, true)
		})
		if err != nil {
			t.Fatal(err)
		}
		s, _ = db.SyncState(ctx, "c")
		if s.DeltaLink != "https://g/delta?2" || s.Seen != 4 || s.Archived != 2 || s.New != 1 || s.Rejected != 1 || s.InitialDoneAt.IsZero() {
			t.Errorf("after two pages = %+v", s)
		}
		// Same folder: cursor kept. New folder id: cursor dropped.
		db.SetFolder(ctx, "c", "Inbox/Support", "F1")
		if s, _ = db.SyncState(ctx, "c"); s.DeltaLink == "" {
			t.Error("SetFolder with the same folder dropped the cursor")
		}
		db.SetFolder(ctx, "c", "Inbox/Support", "F2")
		if s, _ = db.SyncState(ctx, "c"); s.DeltaLink != "" || s.FolderID != "F2" {
			t.Errorf("after folder change = %+v, want cursor dropped", s)
		}
		cut := time.Date(2026, 11, 1, 8, 30, 15, 123456789, time.UTC)
		s, err = db.DecideArchive(ctx, "c", ArchiveDecidedOn, cut, "auto: folder held 5 messages", 5)
		if err != nil || s.ArchiveMode != "on" || !s.ArchiveCutoff.Equal(cut) || s.ProgressTotal != 5 {
			t.Fatalf("decide = %+v, %v", s, err)
		}
		s, _ = db.DecideArchive(ctx, "c", ArchiveDecidedOff, time.Time{}, "again", 0)
		if s.ArchiveMode != "on" || !s.ArchiveCutoff.Equal(cut) {
			t.Errorf("second decision changed the first: %+v", s)
		}
		db.ResetCursor(ctx, "c")
		db.RecordSyncResult(ctx, "c", SyncError, "folder_not_found", "gone", "restore it")
		s, _ = db.SyncState(ctx, "c")
		if s.Resyncs != 1 || s.Status != SyncError || s.ErrorFix != "restore it" || s.LastSyncAt.IsZero() {
			t.Errorf("after reset and error = %+v", s)
		}
		all, err := db.SyncStates(ctx)
		if err != nil || len(all) != 1 {
			t.Errorf("SyncStates = %v, %v", all, err)
		}
	})
}
