package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/m365bridge/m365bridge/webhooks/deliver"
)

// Outbox claims: several daemons deliver one PostgreSQL outbox without two
// of them sending a row at the same time.
//
// Due, on a ClaimingOutbox, does not just read the due rows: it claims them
// (claimed_by, claim_until = now() + visibility) with SELECT ... FOR UPDATE
// SKIP LOCKED, so concurrent claimers never get the same row, and skips rows
// whose claim has not run out. MarkAttempt renews the claim before the POST;
// MarkDelivered, MarkFailed, MarkDead and MarkRejected apply only while the
// row is still claimed by this daemon, and release the claim. A daemon that
// dies leaves its claims to run out: the row is claimable again after the
// visibility timeout, which must therefore exceed one attempt's timeout.
//
// Order: on an ordered endpoint only each channel's oldest pending row (its
// head) is ever claimable, and a claimed head is skipped, not passed over:
// a channel's next row becomes the head only once the head is finished, so
// per-channel order holds across daemons exactly as it does within one.
//
// On SQLite (one daemon) a ClaimingOutbox behaves as the plain outbox.

// ClaimingOutbox returns the outbox queue a dispatcher works over when
// several daemons share the database: as OutboxWith, with claims by claimer
// (the daemon's id) that last visibility.
func (db *DB) ClaimingOutbox(hooks OutboxHooks, claimer string, visibility time.Duration) *Outbox {
	return &Outbox{db: db, hooks: hooks, claimer: claimer, visibility: visibility}
}

func (q *Outbox) claiming() bool { return q.db.pg && q.claimer != "" }

// claim implements Due for a ClaimingOutbox (PostgreSQL).
func (q *Outbox) claim(ctx context.Context, endpoint string, now time.Time, limit int, ordered bool, skip []int64, read bodyRead) ([]deliver.Row, error) {
	not, skipArgs := skipSeqs(skip)
	where := `o.endpoint = ? AND o.state = 'pending'`
	if ordered {
		// heads takes the endpoint. The state test is repeated outside it:
		// when a row is locked the outer conditions are re-checked on its
		// newest version (READ COMMITTED), the subquery's are not, and a
		// head delivered meanwhile must not be claimed again.
		where = `o.seq IN (` + heads + `) AND o.state = 'pending'`
	}
	until, untilArgs := q.db.leaseAt(q.visibility)
	query := `WITH c AS (
			SELECT o.seq FROM outbox o WHERE ` + where + not + ` AND o.next_attempt_at <= ?
				AND (o.claim_until IS NULL OR o.claim_until <= now())
			ORDER BY o.seq LIMIT ? FOR UPDATE OF o SKIP LOCKED)
		UPDATE outbox SET claim_until = ` + until + `, claimed_by = ? FROM c WHERE outbox.seq = c.seq RETURNING outbox.seq`
	args := append(append([]any{endpoint}, skipArgs...), timeText(now), limit)
	args = append(args, untilArgs...)
	return q.claimedRows(ctx, query, append(args, q.claimer), read)
}

// claimedRows runs the claim and reads the claimed rows (with their bodies
// or body sizes: read).
func (q *Outbox) claimedRows(ctx context.Context, query string, args []any, read bodyRead) ([]deliver.Row, error) {
	rows, err := q.db.write.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("claim due outbox rows: %w", err)
	}
	seqs, err := scanAll(rows, "claim due outbox rows", func(r rowScanner) (int64, error) {
		var s int64
		return s, r.Scan(&s)
	})
	if err != nil || len(seqs) == 0 {
		return nil, err
	}
	marks := strings.TrimSuffix(strings.Repeat("?, ", len(seqs)), ", ")
	ids := make([]any, len(seqs))
	for i, s := range seqs {
		ids[i] = s
	}
	got, err := q.db.read.QueryContext(ctx, `SELECT `+outboxColumns+read.from()+` WHERE o.seq IN (`+marks+`) ORDER BY o.seq`, ids...)
	if err != nil {
		return nil, fmt.Errorf("read claimed outbox rows: %w", err)
	}
	return q.db.scanOutbox(got, read)
}

// holdClaim is, for MarkAttempt, the SET that renews this daemon's claim and
// the WHERE that requires it, with their arguments; nothing when not
// claiming.
func (q *Outbox) holdClaim() (set, where string, setArgs, whereArgs []any) {
	if !q.claiming() {
		return "", "", nil, nil
	}
	until, a := q.db.leaseAt(q.visibility)
	return `, claim_until = ` + until, ` AND claimed_by = ? AND claim_until > now()`, a, []any{q.claimer}
}

// releaseClaim is, for the transitions that end an attempt, the SET that
// releases the claim and the WHERE that requires this daemon to hold it.
func (q *Outbox) releaseClaim() (set, where string, whereArgs []any) {
	if !q.claiming() {
		return "", "", nil
	}
	return `, claimed_by = '', claim_until = NULL`, ` AND claimed_by = ?`, []any{q.claimer}
}

// lostClaim tells, after a finishing update matched no row, whether the row
// was finished already (nil: nothing to do twice) or is pending under
// another daemon's claim (ErrLeaseLost: this daemon's result is void, the
// other daemon delivers the row).
func (q *Outbox) lostClaim(ctx context.Context, tx *sql.Tx, seq int64) error {
	if !q.claiming() {
		return nil
	}
	var state, by string
	err := tx.QueryRowContext(ctx, `SELECT state, claimed_by FROM outbox WHERE seq = ?`, seq).Scan(&state, &by)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && state != string(deliver.StatePending)) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("outbox row %d: %w", seq, err)
	}
	return fmt.Errorf("outbox row %d is claimed by %q, not %q: %w", seq, by, q.claimer, ErrLeaseLost)
}
