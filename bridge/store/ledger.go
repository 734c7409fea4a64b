package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Ledger states (see migrations/0004_ledger.sql).
const (
	// LedgerQueued: the event is in the outbox, not yet acknowledged.
	LedgerQueued = "queued"
	// LedgerDelivered: the receiver acknowledged the event; the post-import
	// action may now run.
	LedgerDelivered = "delivered"
	// LedgerDone: the post-import action ran (or was keep).
	LedgerDone = "done"
	// LedgerRejected: refused for good (by the receiver, or the message could
	// not become an event); it stays in the mailbox.
	LedgerRejected = "rejected"
	// LedgerDead: delivery retries exhausted; it stays in the mailbox.
	LedgerDead = "dead"
)

// Ledger kinds: whether a message was imported under archive mode.
const (
	KindArchived = "archived"
	KindNew      = "new"
)

// ErrNoLedgerEntry means the ledger holds no row for the message.
var ErrNoLedgerEntry = errors.New("no ledger entry")

// LedgerEntry is one message the bridge has turned into an event, or refused
// to. MessageID is the immutable Graph id; EventID never changes once set.
type LedgerEntry struct {
	Channel            string    `json:"channel"`
	MessageID          string    `json:"message_id"`
	InternetMessageID  string    `json:"internet_message_id,omitempty"`
	EventID            string    `json:"event_id,omitempty"`
	State              string    `json:"state"`
	Reason             string    `json:"reason,omitempty"`
	Kind               string    `json:"kind"`
	ReceivedAt         time.Time `json:"received_at,omitzero"`
	CreatedAt          time.Time `json:"created_at,omitzero"`
	UpdatedAt          time.Time `json:"updated_at,omitzero"`
	PostActionAttempts int       `json:"post_action_attempts"`
	NextActionAt       time.Time `json:"next_action_at,omitzero"`
	LastError          string    `json:"last_error,omitempty"`
}

const ledgerColumns = `channel, message_id, internet_message_id, event_id, state, reason, kind,
	received_at, created_at, updated_at, post_action_attempts, next_action_at, last_error`

func scanLedger(r rowScanner) (LedgerEntry, error) {
	var e LedgerEntry
	var received, created, updated, next string
	err := r.Scan(&e.Channel, &e.MessageID, &e.InternetMessageID, &e.EventID, &e.State, &e.Reason, &e.Kind,
		&received, &created, &updated, &e.PostActionAttempts, &next, &e.LastError)
	if err != nil {
		return e, err
	}
	for _, p := range []struct {
		dst *time.Time
		src string
	}{{&e.ReceivedAt, received}, {&e.CreatedAt, created}, {&e.UpdatedAt, updated}, {&e.NextActionAt, next}} {
		if *p.dst, err = parseTime(p.src); err != nil {
			return e, fmt.Errorf("ledger %s/%s: bad time %q: %w", e.Channel, e.MessageID, p.src, err)
		}
	}
	return e, nil
}

func optTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return timeText(t)
}

const insertLedger = `INSERT INTO ledger (channel, message_id, internet_message_id, event_id,
		state, reason, kind, received_at, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (channel, message_id) DO NOTHING`

// InsertLedgerTx records e inside tx unless the ledger already holds the
// message (same channel and MessageID); it reports whether a row was added.
// An existing row is never changed, so its event id and state survive any
// re-sync. State must be queued or rejected and Kind archived or new.
func (db *DB) InsertLedgerTx(ctx context.Context, tx *sql.Tx, e LedgerEntry) (bool, error) {
	if e.Channel == "" || e.MessageID == "" {
		return false, fmt.Errorf("insert ledger entry: channel and message id are required")
	}
	if err := db.fence(ctx, tx, e.Channel); err != nil {
		return false, fmt.Errorf("insert ledger entry %s: %w", e.MessageID, err)
	}
	now := timeText(db.Now())
	res, err := db.txExec(ctx, tx, insertLedger, e.Channel, e.MessageID, e.InternetMessageID, e.EventID, e.State, e.Reason, e.Kind,
		optTime(e.ReceivedAt), now, now)
	if err != nil {
		return false, fmt.Errorf("insert ledger entry %s: %w", e.MessageID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("insert ledger entry %s: %w", e.MessageID, err)
	}
	return n == 1, nil
}

// LedgerKnownTx returns which of ids the ledger already holds for channel.
func (db *DB) LedgerKnownTx(ctx context.Context, tx *sql.Tx, channel string, ids []string) (map[string]bool, error) {
	known := make(map[string]bool, len(ids))
	const chunk = 400 // well under SQLite's bound-parameter limit
	for start := 0; start < len(ids); start += chunk {
		part := ids[start:min(start+chunk, len(ids))]
		args := make([]any, 0, len(part)+1)
		args = append(args, channel)
		for _, id := range part {
			args = append(args, id)
		}
		q := `SELECT message_id FROM ledger WHERE channel = ? AND message_id IN (?` +
			strings.Repeat(", ?", len(part)-1) + `)`
		var rows *sql.Rows
		var err error
		if tx != nil {
			rows, err = tx.QueryContext(ctx, q, args...)
		} else {
			rows, err = db.write.QueryContext(ctx, q, args...)
		}
		if err != nil {
			return nil, fmt.Errorf("look up ledger: %w", err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, fmt.Errorf("look up ledger: %w", err)
			}
			known[id] = true
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("look up ledger: %w", err)
		}
	}
	return known, nil
}

// SetLedgerStateByEventTx moves the ledger row of eventID to state (with a
// reason) inside tx; the webhook outbox calls it in the transaction that
// records an acknowledgement (delivered), a permanent refusal (rejected) or
// exhausted retries (dead). A queued row, or a dead or rejected one whose
// event an operator replayed, moves to delivered; a delivered or done row
// never moves back, so a late duplicate acknowledgement cannot undo done.
// No row is not an error: the event may not be a mail event.
func (db *DB) SetLedgerStateByEventTx(ctx context.Context, tx *sql.Tx, eventID, state, reason string) error {
	from := []string{LedgerQueued}
	switch state {
	case LedgerDelivered:
		from = append(from, LedgerDead, LedgerRejected)
	case LedgerRejected, LedgerDead:
		from = append(from, LedgerDead, LedgerRejected)
	case LedgerQueued: // a replay of a dead or rejected event
		from = []string{LedgerDead, LedgerRejected}
	default:
		return fmt.Errorf("set ledger state: %q is not a delivery outcome", state)
	}
	args := []any{state, reason, timeText(db.Now()), eventID}
	for _, f := range from {
		args = append(args, f)
	}
	if _, err := db.txExec(ctx, tx, setLedgerStateSQL(len(from)), args...); err != nil {
		return fmt.Errorf("set ledger state of %s: %w", eventID, err)
	}
	return nil
}

// setLedgerStateSQL is SetLedgerStateByEventTx's update from one of n states.
func setLedgerStateSQL(n int) string {
	return `UPDATE ledger SET state = ?, reason = ?, updated_at = ? WHERE event_id = ? AND state IN (?` +
		strings.Repeat(", ?", n-1) + `)`
}

// DeliveredDue lists up to limit delivered rows of channel whose
// post-import action is due at now, oldest first.
func (db *DB) DeliveredDue(ctx context.Context, channel string, now time.Time, limit int) ([]LedgerEntry, error) {
	rows, err := db.write.QueryContext(ctx, `SELECT `+ledgerColumns+` FROM ledger
		WHERE channel = ? AND state = 'delivered' AND next_action_at <= ?
		ORDER BY updated_at, message_id LIMIT ?`, channel, timeText(now), limit)
	if err != nil {
		return nil, fmt.Errorf("list delivered messages: %w", err)
	}
	return collectLedger(rows)
}

func collectLedger(rows *sql.Rows) ([]LedgerEntry, error) {
	return scanAll(rows, "read ledger", scanLedger)
}

// PostActionResult is the outcome of one message's post-import action.
type PostActionResult struct {
	MessageID string
	// Err nil means done; otherwise the row stays delivered and is retried
	// at RetryAt.
	Err     error
	RetryAt time.Time
}

// RecordPostActions applies post-action outcomes for channel in one
// transaction: successes move delivered rows to done, failures count an
// attempt and schedule the retry. Rows not in state delivered are left alone.
func (db *DB) RecordPostActions(ctx context.Context, channel string, results []PostActionResult) error {
	if len(results) == 0 {
		return nil
	}
	return db.Tx(ctx, func(tx *sql.Tx) error {
		if err := db.fence(ctx, tx, channel); err != nil {
			return fmt.Errorf("record post-import actions: %w", err)
		}
		now := timeText(db.Now())
		for _, r := range results {
			var err error
			if r.Err == nil {
				_, err = tx.ExecContext(ctx, `UPDATE ledger SET state = 'done', last_error = '', next_action_at = '',
					post_action_attempts = post_action_attempts + 1, updated_at = ?
					WHERE channel = ? AND message_id = ? AND state = 'delivered'`, now, channel, r.MessageID)
			} else {
				_, err = tx.ExecContext(ctx, `UPDATE ledger SET last_error = ?, next_action_at = ?,
					post_action_attempts = post_action_attempts + 1
					WHERE channel = ? AND message_id = ? AND state = 'delivered'`,
					truncate(r.Err.Error(), 500), timeText(r.RetryAt), channel, r.MessageID)
			}
			if err != nil {
				return fmt.Errorf("record post-import action of %s: %w", r.MessageID, err)
			}
		}
		return nil
	})
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// LedgerEntryByID reads one row; ErrNoLedgerEntry when there is none.
func (db *DB) LedgerEntryByID(ctx context.Context, channel, messageID string) (LedgerEntry, error) {
	e, err := scanLedger(db.write.QueryRowContext(ctx, `SELECT `+ledgerColumns+` FROM ledger
		WHERE channel = ? AND message_id = ?`, channel, messageID))
	if errors.Is(err, sql.ErrNoRows) {
		return e, fmt.Errorf("read ledger %s/%s: %w", channel, messageID, ErrNoLedgerEntry)
	}
	if err != nil {
		return e, fmt.Errorf("read ledger %s/%s: %w", channel, messageID, err)
	}
	return e, nil
}

// LedgerList lists channel's rows, optionally only those in state (""
// means all), oldest first, at most limit (<= 0: no limit).
func (db *DB) LedgerList(ctx context.Context, channel, state string, limit int) ([]LedgerEntry, error) {
	if limit <= 0 {
		limit = -1
	}
	rows, err := db.read.QueryContext(ctx, `SELECT `+ledgerColumns+` FROM ledger
		WHERE channel = ? AND (? = '' OR state = ?) ORDER BY created_at, message_id LIMIT ?`,
		channel, state, state, limit)
	if err != nil {
		return nil, fmt.Errorf("list ledger: %w", err)
	}
	return collectLedger(rows)
}

// LedgerCounts counts channel's rows by state.
func (db *DB) LedgerCounts(ctx context.Context, channel string) (map[string]int, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT state, COUNT(*) FROM ledger WHERE channel = ? GROUP BY state`, channel)
	if err != nil {
		return nil, fmt.Errorf("count ledger: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			return nil, fmt.Errorf("count ledger: %w", err)
		}
		out[s] = n
	}
	return out, rows.Err()
}
