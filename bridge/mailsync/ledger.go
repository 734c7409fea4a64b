package mailsync

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/m365bridge/m365bridge/bridge/store"
	"github.com/m365bridge/m365bridge/webhooks/deliver"
)

// storeEnqueue is the EnqueueFunc over the store's webhook outbox: the
// event JSON goes to the channel's webhook endpoint.
func storeEnqueue(db *store.DB) EnqueueFunc {
	return func(ctx context.Context, tx *sql.Tx, ev QueuedEvent) error {
		return db.EnqueueTx(ctx, tx, store.OutboxEvent{
			EventID: ev.ID, Endpoint: ev.Webhook, Channel: ev.Channel, Type: ev.Type, Body: ev.Body,
		})
	}
}

// LedgerHooks tie the webhook outbox to the message ledger: an
// acknowledgement moves the message's ledger row to delivered, a permanent
// refusal to rejected and exhausted retries to dead, each in the outbox's
// own transaction (DESIGN.md invariant 1). Pass them to db.OutboxWith for
// the queue the dispatcher works over. notify, if not nil, is called with
// the channel after a row became delivered (use it to call that channel's
// Runner.Notify); it runs inside the transaction, so it must not block.
func LedgerHooks(db *store.DB, notify func(channel string)) store.OutboxHooks {
	return store.OutboxHooks{
		Delivered: func(ctx context.Context, tx *sql.Tx, eventID, channel string) error {
			if err := db.SetLedgerStateByEventTx(ctx, tx, eventID, store.LedgerDelivered, ""); err != nil {
				return err
			}
			if notify != nil {
				notify(channel)
			}
			return nil
		},
		Failed: func(ctx context.Context, tx *sql.Tx, eventID, channel string, state deliver.State, reason string) error {
			to := store.LedgerDead
			if state == deliver.StateRejected {
				to = store.LedgerRejected
			}
			return db.SetLedgerStateByEventTx(ctx, tx, eventID, to, reason)
		},
	}
}

// enqueueErr wraps an outbox failure.
func enqueueErr(id string, err error) error {
	return fmt.Errorf("queue event %s: %w", id, err)
}
