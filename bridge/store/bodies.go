package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// Event bodies live in event_bodies, one per outbox row, written once at
// enqueue (migration 0007). A delivered row's body is kept for inspection
// while the stored bodies fit the state budget (DB.SetBodyBudget); past it,
// the bodies of delivered rows go first, oldest delivery first. The row,
// its event id and its attempt history stay until the endpoint's retention
// retires them. Bodies of pending, dead and rejected rows are never
// dropped: they are still to be delivered or replayed. A delivered row is
// never re-sent (Outbox.Replay refuses it), so no delivery needs a dropped
// body; listing it shows no body (deliver.Row.Body nil).

// SetBodyBudget bounds the bytes of stored event bodies: past it,
// Outbox.Retire drops the bodies of delivered rows, oldest delivery first
// (TrimBodies). Negative (Open's default) means no bound; the daemon sets
// state_budget_bytes. Safe to call while the dispatcher runs (a reload).
func (db *DB) SetBodyBudget(n int64) { db.bodyBudget.Store(n) }

// BodyStats is what the stored event bodies hold.
type BodyStats struct {
	Bodies int   // stored bodies
	Bytes  int64 // their total size
}

// EventBodies returns how many event bodies are stored and their bytes.
func (db *DB) EventBodies(ctx context.Context) (BodyStats, error) {
	var s BodyStats
	// length() of a BLOB reads the record header, not the content.
	err := db.read.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(length(body)), 0) FROM event_bodies`).Scan(&s.Bodies, &s.Bytes)
	if err != nil {
		return s, fmt.Errorf("measure event bodies: %w", err)
	}
	return s, nil
}

// TrimBodies drops bodies of delivered outbox rows, oldest delivery first,
// until the stored bodies total at most budget bytes or no delivered body
// is left. It returns how many bodies it dropped and their bytes. A
// negative budget means no bound.
func (db *DB) TrimBodies(ctx context.Context, budget int64) (dropped int, freed int64, err error) {
	if budget < 0 {
		return 0, 0, nil
	}
	err = db.Tx(ctx, func(tx *sql.Tx) error {
		var total int64
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(SUM(length(body)), 0) FROM event_bodies`).Scan(&total); err != nil {
			return err
		}
		if total <= budget {
			return nil
		}
		rows, err := tx.QueryContext(ctx, `SELECT o.seq, length(b.body) FROM outbox o JOIN event_bodies b ON b.seq = o.seq
			WHERE o.state = 'delivered' ORDER BY o.delivered_at, o.seq`)
		if err != nil {
			return err
		}
		var seqs []any
		for rows.Next() && total-freed > budget {
			var seq, n int64
			if err := rows.Scan(&seq, &n); err != nil {
				rows.Close()
				return err
			}
			seqs = append(seqs, seq)
			freed += n
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for start := 0; start < len(seqs); start += 500 {
			part := seqs[start:min(start+500, len(seqs))]
			q := `DELETE FROM event_bodies WHERE seq IN (` + strings.TrimSuffix(strings.Repeat("?,", len(part)), ",") + `)`
			if _, err := tx.ExecContext(ctx, q, part...); err != nil {
				return err
			}
		}
		dropped = len(seqs)
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("drop delivered event bodies: %w", err)
	}
	return dropped, freed, nil
}
