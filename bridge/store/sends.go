package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Send states (see migrations/0005_sends.sql).
const (
	// SendQueued: accepted, not attempted yet (or Graph said the last
	// attempt was not processed).
	SendQueued = "queued"
	// SendSending: an attempt was committed before the Graph call; the mail
	// may have gone out.
	SendSending = "sending"
	// SendSent: Graph accepted the message.
	SendSent = "sent"
	// SendFailed: a permanent error or retries exhausted; never retried.
	SendFailed = "failed"
)

// ErrNoSend means the store holds no such send request.
var ErrNoSend = errors.New("no such send request")

// ErrIdempotencyConflict means the idempotency key was used before with a
// different request body.
var ErrIdempotencyConflict = errors.New("idempotency key reused with a different request")

// Send is one accepted send request and its progress.
type Send struct {
	ID               string    `json:"id"`
	Channel          string    `json:"channel"`
	IdempotencyKey   string    `json:"idempotency_key"`
	RequestHash      string    `json:"-"`
	Request          []byte    `json:"-"`
	State            string    `json:"state"`
	Attempts         int       `json:"attempts"`
	NextAttemptAt    time.Time `json:"next_attempt_at,omitzero"`
	AttemptStartedAt time.Time `json:"attempt_started_at,omitzero"`
	// Method is where the last attempt got: "draft" (the tagged draft is
	// being built) or "send" (the draft was complete and its send called or
	// about to be); rows of older versions hold "reply" or "sendMail".
	Method            string    `json:"method,omitempty"`
	InternetMessageID string    `json:"internet_message_id,omitempty"`
	Code              string    `json:"code,omitempty"`
	Reason            string    `json:"reason,omitempty"`
	Fix               string    `json:"fix,omitempty"`
	LastError         string    `json:"last_error,omitempty"`
	CreatedAt         time.Time `json:"created_at"`
	UpdatedAt         time.Time `json:"updated_at"`
	FinishedAt        time.Time `json:"finished_at,omitzero"`
}

const sendColumns = `id, channel, idempotency_key, request_hash, request, state, attempts, next_attempt_at,
	attempt_started_at, method, internet_message_id, code, reason, fix, last_error, created_at, updated_at, finished_at`

func scanSend(r rowScanner) (Send, error) {
	var s Send
	var next, started, created, updated, finished string
	err := r.Scan(&s.ID, &s.Channel, &s.IdempotencyKey, &s.RequestHash, &s.Request, &s.State, &s.Attempts, &next,
		&started, &s.Method, &s.InternetMessageID, &s.Code, &s.Reason, &s.Fix, &s.LastError, &created, &updated, &finished)
	if err != nil {
		return s, err
	}
	for _, p := range []struct {
		dst *time.Time
		src string
	}{{&s.NextAttemptAt, next}, {&s.AttemptStartedAt, started}, {&s.CreatedAt, created}, {&s.UpdatedAt, updated}, {&s.FinishedAt, finished}} {
		if *p.dst, err = parseTime(p.src); err != nil {
			return s, fmt.Errorf("send %s: bad time %q: %w", s.ID, p.src, err)
		}
	}
	return s, nil
}

// SendRequestRetention is how long the webhook-id of a signed send request
// is remembered (table send_requests): far longer than a signature is
// valid (the send endpoint's tolerance is 5 minutes either way), so no
// captured request outlives the memory of its id.
const SendRequestRetention = 24 * time.Hour

// ErrRequestIDReused means the webhook-id of a send request was answered
// before with another send row, and this request differs from that one's
// (another channel or another body): a replay to another place, or a
// sender that reuses ids.
var ErrRequestIDReused = errors.New("webhook-id already used for another send request")

// InsertSend stores a new send request, due now, unless it was seen
// before, all in one transaction:
//
//   - requestID (the signed webhook-id; "" for none) already recorded: the
//     row it names is returned, not created; ErrRequestIDReused when that
//     row is another channel's or has another RequestHash. A captured
//     request replayed under a new idempotency key thus sends nothing.
//   - the channel holds a row under the same idempotency key: that row,
//     not created; ErrIdempotencyConflict when its RequestHash differs.
//   - otherwise the row is created.
//
// When a row is returned without an error, requestID is recorded for it
// (see SendRequestRetention; older ids are deleted here).
func (db *DB) InsertSend(ctx context.Context, s Send, requestID string) (Send, bool, error) {
	if s.ID == "" || s.Channel == "" || s.IdempotencyKey == "" || s.RequestHash == "" || len(s.Request) == 0 {
		return s, false, fmt.Errorf("insert send: id, channel, idempotency key, hash and request are required")
	}
	var created bool
	var out Send
	var reused, conflict bool
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		now := db.Now()
		if requestID != "" {
			prev, err := sendByRequestTx(ctx, tx, requestID)
			switch {
			case err == nil:
				out, reused = prev, prev.Channel != s.Channel || prev.RequestHash != s.RequestHash
				return nil
			case !errors.Is(err, sql.ErrNoRows):
				return err
			}
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO sends (id, channel, idempotency_key, request_hash, request,
			state, next_attempt_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, ?)
			ON CONFLICT (channel, idempotency_key) DO NOTHING`,
			s.ID, s.Channel, s.IdempotencyKey, s.RequestHash, s.Request, timeText(now), timeText(now), timeText(now))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		created = n == 1
		out, err = scanSend(tx.QueryRowContext(ctx, `SELECT `+sendColumns+` FROM sends
			WHERE channel = ? AND idempotency_key = ?`, s.Channel, s.IdempotencyKey))
		if err != nil {
			return err
		}
		if conflict = out.RequestHash != s.RequestHash; conflict || requestID == "" {
			return nil
		}
		return rememberRequestTx(ctx, tx, requestID, out.ID, now)
	})
	switch {
	case err != nil:
		return s, false, fmt.Errorf("insert send %s: %w", s.ID, err)
	case reused:
		return out, false, fmt.Errorf("insert send: webhook-id %q (send %s): %w", requestID, out.ID, ErrRequestIDReused)
	case conflict:
		return out, false, fmt.Errorf("insert send: key %q: %w", s.IdempotencyKey, ErrIdempotencyConflict)
	}
	return out, created, nil
}

// SendByRequestID reads the send request a webhook-id was answered with
// (any channel); ErrNoSend when the id is not remembered.
func (db *DB) SendByRequestID(ctx context.Context, requestID string) (Send, error) {
	s, err := sendByRequestTx(ctx, db.read, requestID)
	if errors.Is(err, sql.ErrNoRows) {
		return s, fmt.Errorf("read send: %w", ErrNoSend)
	}
	if err != nil {
		return s, fmt.Errorf("read send: %w", err)
	}
	return s, nil
}

// RememberSendRequest records that the request with this webhook-id was
// answered with send row sendID (an idempotent retry under the row's own
// key): a replay of that request under a new key then finds the row too.
// An id already recorded keeps its row.
func (db *DB) RememberSendRequest(ctx context.Context, requestID, sendID string) error {
	if requestID == "" {
		return nil
	}
	return db.Tx(ctx, func(tx *sql.Tx) error {
		if err := rememberRequestTx(ctx, tx, requestID, sendID, db.Now()); err != nil {
			return fmt.Errorf("remember send request %s: %w", requestID, err)
		}
		return nil
	})
}

func sendByRequestTx(ctx context.Context, q queryRower, requestID string) (Send, error) {
	return scanSend(q.QueryRowContext(ctx, `SELECT `+sendColumns+` FROM sends
		WHERE id = (SELECT send_id FROM send_requests WHERE webhook_id = ?)`, requestID))
}

// rememberRequestTx records requestID for sendID and deletes ids older
// than SendRequestRetention.
func rememberRequestTx(ctx context.Context, tx *sql.Tx, requestID, sendID string, now time.Time) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM send_requests WHERE seen_at < ?`, timeText(now.Add(-SendRequestRetention))); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO send_requests (webhook_id, send_id, seen_at) VALUES (?, ?, ?)
		ON CONFLICT (webhook_id) DO NOTHING`, requestID, sendID, timeText(now))
	return err
}

// SendByKey reads a channel's request by idempotency key; ErrNoSend when
// there is none.
func (db *DB) SendByKey(ctx context.Context, channel, key string) (Send, error) {
	return db.readSend(ctx, `channel = ? AND idempotency_key = ?`, channel, key)
}

// SendByID reads a channel's request by id; ErrNoSend when there is none
// (or it belongs to another channel).
func (db *DB) SendByID(ctx context.Context, channel, id string) (Send, error) {
	return db.readSend(ctx, `channel = ? AND id = ?`, channel, id)
}

func (db *DB) readSend(ctx context.Context, where string, args ...any) (Send, error) {
	s, err := scanSend(db.read.QueryRowContext(ctx, `SELECT `+sendColumns+` FROM sends WHERE `+where, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return s, fmt.Errorf("read send: %w", ErrNoSend)
	}
	if err != nil {
		return s, fmt.Errorf("read send: %w", err)
	}
	return s, nil
}

// DueSends lists queued and sending rows due at now, oldest first, at most
// limit.
func (db *DB) DueSends(ctx context.Context, now time.Time, limit int) ([]Send, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT `+sendColumns+` FROM sends
		WHERE state IN ('queued', 'sending') AND next_attempt_at <= ? ORDER BY next_attempt_at, created_at LIMIT ?`,
		timeText(now), limit)
	if err != nil {
		return nil, fmt.Errorf("list due sends: %w", err)
	}
	return scanAll(rows, "list due sends", scanSend)
}

// NextSendDue is when the earliest queued or sending row is due; ok is
// false when there is none.
func (db *DB) NextSendDue(ctx context.Context) (time.Time, bool, error) {
	var next sql.NullString
	err := db.read.QueryRowContext(ctx, `SELECT MIN(next_attempt_at) FROM sends WHERE state IN ('queued', 'sending')`).Scan(&next)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("next due send: %w", err)
	}
	if !next.Valid || next.String == "" {
		return time.Time{}, false, nil
	}
	t, err := parseTime(next.String)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("next due send: %w", err)
	}
	return t, true, nil
}

// MarkSending commits an attempt before the Graph call: state sending,
// attempts = attempt, the attempt's start and method, and when the row is
// due again should the process die (recheck). It fails unless the row is
// still queued or sending.
func (db *DB) MarkSending(ctx context.Context, id string, attempt int, method string, started, recheck time.Time) error {
	return db.updateSend(ctx, id, `state = 'sending', attempts = ?, method = ?, attempt_started_at = ?, next_attempt_at = ?`,
		attempt, method, timeText(started), timeText(recheck))
}

// RetrySend puts a row back to state (queued: not sent for sure; sending:
// it may have gone out, check Sent Items first) due at next, keeping the
// error excerpt.
func (db *DB) RetrySend(ctx context.Context, id, state string, next time.Time, lastErr string) error {
	if state != SendQueued && state != SendSending {
		return fmt.Errorf("retry send %s: state %q is not queued or sending", id, state)
	}
	return db.updateSend(ctx, id, `state = ?, next_attempt_at = ?, last_error = ?`, state, timeText(next), capText(lastErr, outboxErrorBytes))
}

// SendOutcome is how a send request ended.
type SendOutcome struct {
	State             string // SendSent or SendFailed
	InternetMessageID string
	Code, Reason, Fix string
	LastError         string
}

// FinishSend records the outcome and queues its events in one
// transaction, so an outcome is never without its event nor reported twice.
// It fails unless the row is still queued or sending.
func (db *DB) FinishSend(ctx context.Context, id string, o SendOutcome, events ...OutboxEvent) error {
	if o.State != SendSent && o.State != SendFailed {
		return fmt.Errorf("finish send %s: state %q is not sent or failed", id, o.State)
	}
	return db.Tx(ctx, func(tx *sql.Tx) error {
		now := timeText(db.Now())
		res, err := tx.ExecContext(ctx, `UPDATE sends SET state = ?, internet_message_id = ?, code = ?, reason = ?, fix = ?,
			last_error = ?, finished_at = ?, updated_at = ? WHERE id = ? AND state IN ('queued', 'sending')`,
			o.State, o.InternetMessageID, o.Code, o.Reason, o.Fix, capText(o.LastError, outboxErrorBytes), now, now, id)
		if err != nil {
			return fmt.Errorf("finish send %s: %w", id, err)
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return fmt.Errorf("finish send %s: not queued or sending (rows %d, %v)", id, n, err)
		}
		for _, e := range events {
			if err := db.EnqueueTx(ctx, tx, e); err != nil {
				return err
			}
		}
		return nil
	})
}

func (db *DB) updateSend(ctx context.Context, id, set string, args ...any) error {
	return db.Tx(ctx, func(tx *sql.Tx) error {
		args = append(args, timeText(db.Now()), id)
		res, err := tx.ExecContext(ctx, `UPDATE sends SET `+set+`, updated_at = ? WHERE id = ? AND state IN ('queued', 'sending')`, args...)
		if err != nil {
			return fmt.Errorf("update send %s: %w", id, err)
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return fmt.Errorf("update send %s: not queued or sending (rows %d, %v)", id, n, err)
		}
		return nil
	})
}

// LedgerByEventID finds the channel's ledger row for an event id (the
// message a reply answers); ErrNoLedgerEntry when there is none.
func (db *DB) LedgerByEventID(ctx context.Context, channel, eventID string) (LedgerEntry, error) {
	return db.ledgerWhere(ctx, `channel = ? AND event_id = ?`, channel, eventID)
}

// LedgerByInternetMessageID finds the channel's ledger row for an
// Internet Message-ID (with angle brackets, as the header carries it);
// ErrNoLedgerEntry when there is none.
func (db *DB) LedgerByInternetMessageID(ctx context.Context, channel, internetMessageID string) (LedgerEntry, error) {
	return db.ledgerWhere(ctx, `channel = ? AND internet_message_id = ?`, channel, internetMessageID)
}

func (db *DB) ledgerWhere(ctx context.Context, where string, args ...any) (LedgerEntry, error) {
	e, err := scanLedger(db.read.QueryRowContext(ctx, `SELECT `+ledgerColumns+` FROM ledger WHERE `+where+` LIMIT 1`, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return e, fmt.Errorf("read ledger: %w", ErrNoLedgerEntry)
	}
	if err != nil {
		return e, fmt.Errorf("read ledger: %w", err)
	}
	return e, nil
}

// SendCounts counts reply requests by channel and state (queued, sending,
// sent, failed).
func (db *DB) SendCounts(ctx context.Context) (map[string]map[string]int, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT channel, state, COUNT(*) FROM sends GROUP BY channel, state`)
	if err != nil {
		return nil, fmt.Errorf("count sends: %w", err)
	}
	defer rows.Close()
	out := map[string]map[string]int{}
	for rows.Next() {
		var ch, st string
		var n int
		if err := rows.Scan(&ch, &st, &n); err != nil {
			return nil, fmt.Errorf("count sends: %w", err)
		}
		if out[ch] == nil {
			out[ch] = map[string]int{}
		}
		out[ch][st] = n
	}
	return out, rows.Err()
}
