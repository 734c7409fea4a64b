package store

import (
	"context"
	"testing"
	"time"
)

// TestPreparingForTheWriterDoesNotBlockATransaction: a statement being
// prepared for the writer waits for the writer's one connection; a
// transaction holding that connection must still find its own cached
// statements and finish. The cache's lock was held while preparing, so a
// delivery failing (MarkFailed, preparing) and one acknowledged
// (MarkDelivered, in its transaction) deadlocked the daemon.
func TestPreparingForTheWriterDoesNotBlockATransaction(t *testing.T) {
	db := openTestDB(t)
	ctx := context.Background()
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	waits := db.write.Stats().WaitCount
	prepared := make(chan error, 1)
	go func() {
		_, err := db.poolExec(ctx, db.write, `UPDATE channels SET name = name WHERE 0 = 1`)
		prepared <- err
	}()
	// The preparing goroutine is queued for the writer's connection once
	// database/sql counts its wait.
	for deadline := time.Now().Add(time.Minute); db.write.Stats().WaitCount == waits; {
		if time.Now().After(deadline) {
			t.Fatal("the statement never waited for the writer's connection")
		}
		time.Sleep(time.Millisecond) // polling database/sql's wait counter: it has no signal
	}
	inTx := make(chan error, 1)
	go func() {
		_, err := db.txExec(ctx, tx, insertLedger+" -- not cached")
		inTx <- err
	}()
	select {
	case <-inTx: // it ran (an error from the bogus arguments is fine): no deadlock
	case <-time.After(time.Minute): // a safety net far above the milliseconds this takes
		tx.Rollback() // frees the connection, so that the test can end
		t.Fatal("the transaction waited for the statement cache while a prepare waited for the transaction's connection: deadlock")
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := <-prepared; err != nil {
		t.Fatal(err)
	}
}
