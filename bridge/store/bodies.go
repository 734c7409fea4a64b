package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/m365bridge/m365bridge/webhooks/deliver"
)

// Event bodies live in event_bodies, one per outbox row, written once at
// enqueue (migration 0007); on SQLite the row holds only a reference to
// the body in the spool's segment files (spool.go, migration 0011). A delivered row's body is kept for inspection
// while the stored bodies fit the state budget (DB.SetBodyBudget); past it,
// the bodies of delivered rows go first, oldest delivery first. The row,
// its event id and its attempt history stay until the endpoint's retention
// retires them. Bodies of pending, dead and rejected rows are never
// dropped: they are still to be delivered or replayed. A delivered row is
// never re-sent (Outbox.Replay refuses it), so no delivery needs a dropped
// body; listing it shows no body (deliver.Row.Body nil).

// SetBodyBudget bounds the bytes of stored event bodies: past it, the
// bodies of delivered rows go, oldest delivery first (TrimBodies), each
// time the bodies delivered since the last trim pass an eighth of the
// budget (MarkDelivered) and at each Outbox.Retire. Negative (Open's
// default) means no bound; the daemon sets state_budget_bytes. Safe to
// call while the dispatcher runs (a reload).
func (db *DB) SetBodyBudget(n int64) { db.bodyBudget.Store(n) }

// trimMinBytes is the fewest delivered body bytes between two prompt
// trims, whatever the budget: a trim sums the sizes of every stored body,
// so a small budget does not pay that on each delivery.
const trimMinBytes = 2 << 20

// trimEvery is how many delivered body bytes pass between prompt trims
// under budget: an eighth of it, at least trimMinBytes. During an import
// SQLite reuses the pages the trim freed, so the file stays near the
// budget plus the pending bodies plus this much, instead of growing with
// everything delivered until the hourly Retire (a file never shrinks).
func trimEvery(budget int64) int64 { return max(budget/8, trimMinBytes) }

// noteDelivered counts n delivered body bytes and, once those since the
// last trim reach trimEvery, trims the bodies to the budget, outside the
// delivering transaction and one trim at a time (a delivery that finds a
// trim running leaves it to that one and the next). A failed trim is
// logged; its bytes stay counted, so the next delivery tries again.
func (db *DB) noteDelivered(ctx context.Context, n int64) {
	budget := db.bodyBudget.Load()
	if budget < 0 {
		return
	}
	due := db.sinceTrim.Add(n)
	if due < trimEvery(budget) || !db.trimming.CompareAndSwap(false, true) {
		return
	}
	defer db.trimming.Store(false)
	db.sinceTrim.Add(-due)
	dropped, freed, err := db.TrimBodies(ctx, budget)
	if err != nil {
		db.sinceTrim.Add(due)
		if ctx.Err() == nil {
			db.logger().Warn("trim delivered event bodies to state_budget_bytes failed; retried at the next delivery",
				"budget", budget, "error", err)
		}
		return
	}
	if dropped > 0 {
		db.logger().Debug("trimmed delivered event bodies to state_budget_bytes", "budget", budget, "bodies", dropped, "bytes", freed)
	}
}

func (db *DB) logger() *slog.Logger {
	if db.Log != nil {
		return db.Log
	}
	return slog.Default()
}

// BodyStats is what the stored event bodies hold.
type BodyStats struct {
	Bodies int   // stored bodies
	Bytes  int64 // their total size
}

// EventBodies returns how many event bodies are stored and their bytes
// (the bodies' own sizes; SpoolBytes is what their segment files take).
func (db *DB) EventBodies(ctx context.Context) (BodyStats, error) {
	var s BodyStats
	// length() of a BLOB reads the record header, not the content.
	err := db.read.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(`+bodySize+`), 0) FROM event_bodies b`).Scan(&s.Bodies, &s.Bytes)
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
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(SUM(`+bodySize+`), 0) FROM event_bodies b`).Scan(&total); err != nil {
			return err
		}
		if total <= budget {
			return nil
		}
		rows, err := tx.QueryContext(ctx, `SELECT o.seq, `+bodySize+` FROM outbox o JOIN event_bodies b ON b.seq = o.seq
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
	if dropped > 0 {
		if err := db.tidySpool(ctx); err != nil {
			return dropped, freed, err
		}
	}
	return dropped, freed, nil
}

// bodySize is the size of event_bodies b's body without reading it: the
// size column of rows written since migration 0011, else length() of the
// BLOB (bytea), which reads its size, not its content.
const bodySize = `COALESCE(b.size, length(b.body))`

// storedBodyColumns are what storedBody scans of event_bodies b.
const storedBodyColumns = `b.body, b.segment, b.seg_offset, b.size, b.crc32c`

// storedBody is an event_bodies row: the body itself (written before
// migration 0011, or on PostgreSQL) or where it is in the spool.
type storedBody struct {
	body                         []byte
	segment, offset, size, crc32 sql.NullInt64
}

func (sb *storedBody) dst() []any {
	return []any{&sb.body, &sb.segment, &sb.offset, &sb.size, &sb.crc32}
}

// loadBody returns row seq's body: sb's own, or read from the spool.
func (db *DB) loadBody(seq int64, sb storedBody) ([]byte, error) {
	if !sb.segment.Valid {
		return sb.body, nil
	}
	if db.spool == nil {
		return nil, fmt.Errorf("read body of outbox row %d: it is in body spool segment %d, but this database has no spool", seq, sb.segment.Int64)
	}
	ref := bodyRef{segment: sb.segment.Int64, offset: sb.offset.Int64, size: sb.size.Int64, crc: uint32(sb.crc32.Int64)}
	body, err := db.spool.read(seq, ref)
	var damaged *BodyDamagedError
	if !errors.As(err, &damaged) {
		return body, err
	}
	// Compaction may have moved the body (and deleted its old segment)
	// since the reference was read: read the reference again.
	var now storedBody
	switch err := db.read.QueryRow(`SELECT `+storedBodyColumns+` FROM event_bodies b WHERE b.seq = ?`, seq).Scan(now.dst()...); {
	case errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("read body of outbox row %d: %w (retired or dropped)", seq, deliver.ErrNotPending)
	case err != nil:
		return nil, fmt.Errorf("read body of outbox row %d: %w", seq, err)
	case now.segment != sb.segment || now.offset != sb.offset:
		return db.loadBody(seq, now)
	}
	return nil, damaged
}

// storeBody writes row seq's body in tx: into the spool on SQLite (synced
// before tx commits, DB.Tx), into event_bodies on PostgreSQL.
func (db *DB) storeBody(ctx context.Context, tx *sql.Tx, seq int64, body []byte) error {
	if db.spool == nil {
		_, err := db.txExec(ctx, tx, insertBody, seq, body, len(body))
		return err
	}
	ref, err := db.spool.append(tx, body)
	if err != nil {
		return err
	}
	_, err = db.txExec(ctx, tx, insertSpooled, seq, []byte{}, ref.segment, ref.offset, ref.size, int64(ref.crc))
	return err
}

// damagedBodyRetry is how long a pending row whose body is damaged waits
// before the dispatcher reads it again: the error is the operator's to
// fix, and the row must not spin the dispatcher meanwhile.
const damagedBodyRetry = 5 * time.Minute

// deferDamaged records e in its row's last_error and defers the row by
// damagedBodyRetry; the row stays pending (never dropped or rejected: a
// restored segment file makes it deliverable again).
func (q *Outbox) deferDamaged(ctx context.Context, e *BodyDamagedError) {
	_, err := q.db.write.ExecContext(ctx, `UPDATE outbox SET last_error = ?, next_attempt_at = ? WHERE seq = ? AND state = 'pending'`,
		capText(e.Error(), outboxErrorBytes), timeText(q.db.Now().Add(damagedBodyRetry)), e.Seq)
	if err != nil && ctx.Err() == nil {
		q.db.logger().Warn("record a damaged event body on its outbox row failed", "seq", e.Seq, "error", err)
	}
}
