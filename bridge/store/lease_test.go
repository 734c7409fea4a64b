package store

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/store/storetest"
)

// expire makes l run out: on SQLite by moving the store's clock past it,
// on PostgreSQL (whose lease clock is the server's) by waiting until the
// server says it is no longer live — a poll with a deadline, not a sleep
// of a guessed length.
func expire(t *testing.T, db *DB, now *time.Time, l Lease) {
	t.Helper()
	if !db.Postgres() {
		*now = l.Expires.Add(time.Second)
		return
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ls, err := db.Leases(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, li := range ls {
			if li.Channel == l.Channel && li.Token == l.Token && !li.Live {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("lease %+v still live after 30 s", l)
		}
		time.Sleep(5 * time.Millisecond) // pacing of the poll, well under the 100 ms TTL used here
	}
}

// commitPage writes what one delta page commits for channel — a ledger row,
// its outbox event and the cursor — in one transaction under ctx's lease.
func commitPage(ctx context.Context, db *DB, channel, id, cursor string) error {
	return db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := db.InsertLedgerTx(ctx, tx, LedgerEntry{Channel: channel, MessageID: id, EventID: "evt_" + id,
			State: LedgerQueued, Kind: KindNew}); err != nil {
			return err
		}
		if err := db.EnqueueTx(ctx, tx, ev("evt_"+id, channel)); err != nil {
			return err
		}
		return db.AdvanceCursorTx(ctx, tx, channel, cursor, PageCounts{Seen: 1, New: 1}, false)
	})
}

func TestLeaseAcquireRenewRelease(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		db, _ := b.openOutbox(t)
		const ttl = time.Minute
		a, err := db.AcquireLease(ctx, "support", "daemon-a", ttl)
		if err != nil || a.Token != 1 {
			t.Fatalf("first acquire = %+v, %v; want token 1", a, err)
		}
		again, err := db.AcquireLease(ctx, "support", "daemon-a", ttl)
		if err != nil || again.Token != a.Token {
			t.Fatalf("re-acquire by the owner = %+v, %v; want the same token %d", again, err, a.Token)
		}
		if _, err := db.RenewLease(ctx, a, ttl); err != nil {
			t.Fatalf("renew: %v", err)
		}
		if db.Postgres() {
			if _, err := db.AcquireLease(ctx, "support", "daemon-b", ttl); !errors.Is(err, ErrLeaseHeld) {
				t.Fatalf("acquire of a held lease: %v, want ErrLeaseHeld", err)
			}
		}
		if err := db.ReleaseLease(ctx, a); err != nil {
			t.Fatalf("release: %v", err)
		}
		bl, err := db.AcquireLease(ctx, "support", "daemon-b", ttl)
		if err != nil || bl.Token != a.Token+1 {
			t.Fatalf("acquire after release = %+v, %v; want token %d", bl, err, a.Token+1)
		}
		if _, err := db.RenewLease(ctx, a, ttl); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("renew of a lease taken over: %v, want ErrLeaseLost", err)
		}
		if err := db.ReleaseLease(ctx, a); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("release of a lease taken over: %v, want ErrLeaseLost", err)
		}
		ls, err := db.Leases(ctx)
		if err != nil || len(ls) != 1 || ls[0].Owner != "daemon-b" || ls[0].Token != bl.Token || !ls[0].Live {
			t.Fatalf("leases = %+v, %v", ls, err)
		}
	})
}

// TestFencedWriteOfStaleOwnerIsRejected: daemon A's lease runs out (it was
// paused), daemon B takes the channel over; A then tries to commit a page
// (ledger row + outbox event + cursor). It gets ErrLeaseLost and nothing of
// it is written, while B's page under the new token commits.
func TestFencedWriteOfStaleOwnerIsRejected(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		db, now := b.openOutbox(t)
		bg := context.Background()
		db.RequireLeases(true)
		ttl := 100 * time.Millisecond
		a, err := db.AcquireLease(bg, "support", "daemon-a", ttl)
		if err != nil {
			t.Fatal(err)
		}
		ctxA := WithLease(bg, a)
		// While the lease holds, A's writes commit (the check can pass).
		if err := commitPage(ctxA, db, "support", "m1", "cursor-1"); err != nil {
			t.Fatalf("write under a live lease: %v", err)
		}
		// Without a lease, in a cluster, no write at all.
		if err := commitPage(bg, db, "support", "m0", "cursor-0"); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("write without a lease: %v, want ErrLeaseLost", err)
		}
		// A channel notice from elsewhere (the consent callback) says so.
		if err := db.Enqueue(Unfenced(bg), ev("notice-1", "support")); err != nil {
			t.Fatalf("an explicitly unfenced notice: %v", err)
		}
		// A lease of another channel does not cover this one.
		if err := commitPage(ctxA, db, "sales", "s1", "cursor-s"); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("write under another channel's lease: %v, want ErrLeaseLost", err)
		}

		expire(t, db, now, a)
		// Expired, not yet taken: A still may not write.
		if err := commitPage(ctxA, db, "support", "m2", "cursor-2"); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("write under an expired lease: %v, want ErrLeaseLost", err)
		}
		bl, err := db.AcquireLease(bg, "support", "daemon-b", time.Minute)
		if err != nil || bl.Token <= a.Token {
			t.Fatalf("takeover = %+v, %v; want a token above %d", bl, err, a.Token)
		}
		if err := commitPage(ctxA, db, "support", "m3", "cursor-3"); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("stale owner's write after takeover: %v, want ErrLeaseLost", err)
		}
		// A post-action result and a cursor reset are fenced too.
		if err := db.RecordPostActions(ctxA, "support", []PostActionResult{{MessageID: "m1"}}); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("stale post-action record: %v, want ErrLeaseLost", err)
		}
		if err := db.ResetCursor(ctxA, "support"); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("stale cursor reset: %v, want ErrLeaseLost", err)
		}
		if err := commitPage(WithLease(bg, bl), db, "support", "m4", "cursor-4"); err != nil {
			t.Fatalf("new owner's write: %v", err)
		}
		// B hands the channel back; A acquires it anew (same daemon id, new
		// token). A write still carrying A's first lease — a goroutine of
		// the old round — is refused: the token, not the owner, fences.
		if err := db.ReleaseLease(bg, bl); err != nil {
			t.Fatal(err)
		}
		a2, err := db.AcquireLease(bg, "support", "daemon-a", time.Minute)
		if err != nil || a2.Token <= bl.Token {
			t.Fatalf("re-acquire by A = %+v, %v; want a token above %d", a2, err, bl.Token)
		}
		if err := commitPage(ctxA, db, "support", "m5", "cursor-5"); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("write under A's first token after A re-acquired: %v, want ErrLeaseLost", err)
		}

		// Nothing of A's rejected pages is in the ledger, outbox or cursor.
		for _, r := range [][2]string{{"support", "m0"}, {"support", "m2"}, {"support", "m3"}, {"support", "m5"}, {"sales", "s1"}} {
			if _, err := db.LedgerEntryByID(bg, r[0], r[1]); !errors.Is(err, ErrNoLedgerEntry) {
				t.Errorf("ledger row %s of a rejected write: %v, want none", r[1], err)
			}
		}
		counts, err := db.LedgerCounts(bg, "support")
		if err != nil || counts[LedgerQueued] != 2 {
			t.Errorf("ledger counts = %v, %v; want 2 queued (m1, m4)", counts, err)
		}
		var events int
		db.read.QueryRowContext(bg, `SELECT COUNT(*) FROM outbox`).Scan(&events)
		if events != 3 {
			t.Errorf("outbox rows = %d, want 3 (m1, notice-1, m4)", events)
		}
		st, err := db.SyncState(bg, "support")
		if err != nil || st.DeltaLink != "cursor-4" || st.Resyncs != 0 {
			t.Errorf("cursor = %q (resyncs %d), %v; want cursor-4, no reset", st.DeltaLink, st.Resyncs, err)
		}
	})
}

func TestMembersHeartbeat(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		db, now := b.openOutbox(t)
		for _, id := range []string{"b", "a"} {
			if err := db.Heartbeat(ctx, id, "http://"+id); err != nil {
				t.Fatal(err)
			}
		}
		ms, err := db.LiveMembers(ctx, time.Minute)
		if err != nil || len(ms) != 2 || ms[0].ID != "a" || ms[1].Address != "http://b" {
			t.Fatalf("members = %+v, %v", ms, err)
		}
		if err := db.LeaveCluster(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		if !db.Postgres() {
			*now = now.Add(2 * time.Minute) // b's heartbeat ages out
			if ms, _ := db.LiveMembers(ctx, time.Minute); len(ms) != 0 {
				t.Fatalf("members after the ttl = %+v, want none", ms)
			}
			return
		}
		if ms, _ := db.LiveMembers(ctx, time.Minute); len(ms) != 1 || ms[0].ID != "b" {
			t.Fatalf("members after a left = %+v, want b", ms)
		}
	})
}

// TestPausedOwnerMidTransactionLosesItsWrite: a daemon paused (SIGSTOP, a
// long GC, a partition) inside a transaction that passed its lease check
// holds the lease row's lock. Once its lease has run out, the takeover
// waits only until the server ends the idle transaction, and the paused
// daemon's commit then fails: nothing of it is written.
func TestPausedOwnerMidTransactionLosesItsWrite(t *testing.T) {
	dsn := storetest.Postgres(t) + "&idle_in_transaction_session_timeout=300"
	ctx := context.Background()
	open := func() *DB {
		db, err := OpenPostgres(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	a, b := open(), open()
	la, err := a.AcquireLease(ctx, "support", "daemon-a", 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	checked, resume := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		lctx := WithLease(ctx, la)
		done <- a.Tx(lctx, func(tx *sql.Tx) error {
			if _, err := a.InsertLedgerTx(lctx, tx, LedgerEntry{Channel: "support", MessageID: "late", EventID: "evt_late",
				State: LedgerQueued, Kind: KindNew}); err != nil {
				return err
			}
			close(checked)
			<-resume // paused here, past the lease
			return nil
		})
	}()
	<-checked
	expire(t, b, nil, la)
	took := make(chan error, 1)
	go func() {
		_, err := b.AcquireLease(ctx, "support", "daemon-b", time.Minute)
		took <- err
	}()
	select {
	case err := <-took:
		if err != nil {
			t.Fatalf("takeover: %v", err)
		}
	case <-time.After(30 * time.Second): // safety net; the server ends the session after 0.3 s
		t.Fatal("takeover still blocked by the paused owner's transaction")
	}
	close(resume)
	if err := <-done; err == nil {
		t.Fatal("the paused owner's transaction committed after its lease was taken over")
	}
	if _, err := b.LedgerEntryByID(ctx, "support", "late"); !errors.Is(err, ErrNoLedgerEntry) {
		t.Fatalf("the paused owner's row: %v, want none", err)
	}
}
