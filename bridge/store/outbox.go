package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/m365bridge/m365bridge/webhooks/deliver"
)

// OutboxEvent is one event to deliver to one endpoint.
type OutboxEvent struct {
	EventID  string // = webhook-id; stable across retries and replays
	Endpoint string
	Channel  string
	Type     string
	Body     []byte // the event JSON
}

// outboxErrorBytes caps last_error.
const outboxErrorBytes = 1024

// AckHook runs inside the transaction that marks an outbox row delivered;
// an error rolls the acknowledgement back (the row is retried later).
type AckHook func(ctx context.Context, tx *sql.Tx, eventID, channel string) error

// FailHook runs inside the transaction that makes an outbox row dead or
// rejected; state is deliver.StateDead or deliver.StateRejected.
type FailHook func(ctx context.Context, tx *sql.Tx, eventID, channel string, state deliver.State, reason string) error

// OutboxHooks tie an outbox's terminal transitions to the rest of the
// state: each runs inside the transaction that finishes the row, so the
// row's new state and the hook's writes commit together or not at all.
type OutboxHooks struct {
	// Delivered runs inside every MarkDelivered transaction (the daemon
	// moves the message's ledger row to delivered there).
	Delivered AckHook
	// Failed runs inside every MarkDead and MarkRejected transaction.
	Failed FailHook
}

const (
	insertOutbox = `INSERT INTO outbox (event_id, endpoint, channel, type, next_attempt_at, created_at)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (event_id, endpoint) DO NOTHING RETURNING seq`
	insertBody    = `INSERT INTO event_bodies (seq, body, size) VALUES (?, ?, ?)`
	insertSpooled = `INSERT INTO event_bodies (seq, body, segment, seg_offset, size, crc32c) VALUES (?, ?, ?, ?, ?, ?)`
)

// markDeliveredSQL is MarkDelivered's update with a claim's set and where.
// It returns the body's bytes too (bodySize: never the body): they count
// towards the next prompt trim (noteDelivered).
func markDeliveredSQL(set, where string) string {
	return `UPDATE outbox SET state = 'delivered', last_status = ?, last_error = '', delivered_at = ?` + set + `
		WHERE seq = ? AND state = 'pending'` + where + ` RETURNING event_id, channel,
		COALESCE((SELECT ` + bodySize + ` FROM event_bodies b WHERE b.seq = outbox.seq), 0)`
}

// EnqueueTx adds e to the outbox inside the caller's transaction, due now.
// An (event id, endpoint) already present is left as it is: never a second
// row, never a new id. The caller wakes the dispatcher after commit.
func (db *DB) EnqueueTx(ctx context.Context, tx *sql.Tx, e OutboxEvent) error {
	if e.EventID == "" || e.Endpoint == "" || e.Type == "" || len(e.Body) == 0 {
		return fmt.Errorf("enqueue event: event id, endpoint, type and body are required (got id %q endpoint %q type %q, %d body bytes)",
			e.EventID, e.Endpoint, e.Type, len(e.Body))
	}
	if e.Channel != "" {
		if err := db.fence(ctx, tx, e.Channel); err != nil {
			return fmt.Errorf("enqueue event %s: %w", e.EventID, err)
		}
	}
	now := timeText(db.Now())
	var seq int64
	err := db.txQueryRow(ctx, tx, insertOutbox, e.EventID, e.Endpoint, e.Channel, e.Type, now, now).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return nil // already queued: the first row and its body stay
	}
	if err != nil {
		return fmt.Errorf("enqueue event %s: %w", e.EventID, err)
	}
	// The body is written once, apart from the outbox row, whose state
	// changes do not rewrite it (migration 0007): on SQLite into the spool
	// (synced before tx commits, migration 0011), on PostgreSQL into its
	// own table.
	if err := db.storeBody(ctx, tx, seq, e.Body); err != nil {
		return fmt.Errorf("enqueue event %s: store body: %w", e.EventID, err)
	}
	return nil
}

// Enqueue adds events in one transaction of its own; see EnqueueTx.
func (db *DB) Enqueue(ctx context.Context, events ...OutboxEvent) error {
	return db.Tx(ctx, func(tx *sql.Tx) error {
		for _, e := range events {
			if err := db.EnqueueTx(ctx, tx, e); err != nil {
				return err
			}
		}
		return nil
	})
}

// Outbox is the store's implementation of deliver.Queue.
type Outbox struct {
	db    *DB
	hooks OutboxHooks
	// claimer and visibility: see ClaimingOutbox (PostgreSQL only).
	claimer    string
	visibility time.Duration
}

var _ deliver.Queue = (*Outbox)(nil)

// Outbox returns the outbox without hooks: for listing, counting,
// replaying and endpoint state. A dispatcher whose acknowledgements must
// reach the message ledger works over OutboxWith instead.
func (db *DB) Outbox() *Outbox { return &Outbox{db: db} }

// OutboxWith returns the outbox queue a dispatcher works over, with hooks
// that run inside the transactions that finish a row (see OutboxHooks).
func (db *DB) OutboxWith(hooks OutboxHooks) *Outbox { return &Outbox{db: db, hooks: hooks} }

const outboxColumns = `o.seq, o.event_id, o.endpoint, o.channel, o.type, o.state, o.attempts, o.next_attempt_at, o.created_at,
	o.replayed_at, o.last_attempt_at, o.last_status, o.last_error, o.delivered_at`

// bodyRead is what a query over outbox o reads of the row's body.
type bodyRead int

const (
	readNone bodyRead = iota // metadata only
	readBody                 // Row.Body; nil where it was dropped after delivery
	readSize                 // Row.BodySize: the body's bytes, not the body
)

// from is the extra column and the FROM clause for r.
func (r bodyRead) from() string {
	switch r {
	case readBody:
		return `, ` + storedBodyColumns + ` FROM outbox o LEFT JOIN event_bodies b ON b.seq = o.seq`
	case readSize:
		return `, COALESCE(` + bodySize + `, 0) FROM outbox o LEFT JOIN event_bodies b ON b.seq = o.seq`
	}
	return ` FROM outbox o`
}

// scanOutbox reads rows; with readBody, a spooled body is read from its
// segment (a damaged one fails the whole read: BodyDamagedError).
func (db *DB) scanOutbox(rows *sql.Rows, read bodyRead) ([]deliver.Row, error) {
	defer rows.Close()
	var out []deliver.Row
	for rows.Next() {
		var r deliver.Row
		var state, next, created, replayed, last, delivered string
		var sb storedBody
		dst := []any{&r.Seq, &r.EventID, &r.Endpoint, &r.Channel, &r.Type, &state, &r.Attempts, &next, &created,
			&replayed, &last, &r.LastStatus, &r.LastError, &delivered}
		switch read {
		case readBody:
			dst = append(dst, sb.dst()...)
		case readSize:
			dst = append(dst, &r.BodySize)
		}
		if err := rows.Scan(dst...); err != nil {
			return nil, fmt.Errorf("read outbox row: %w", err)
		}
		if read == readBody {
			body, err := db.loadBody(r.Seq, sb)
			if err != nil {
				return nil, err
			}
			r.Body = body
		}
		r.State = deliver.State(state)
		for _, p := range []struct {
			dst *time.Time
			src string
		}{{&r.NextAttemptAt, next}, {&r.CreatedAt, created}, {&r.ReplayedAt, replayed}, {&r.LastAttemptAt, last}, {&r.DeliveredAt, delivered}} {
			t, err := parseTime(p.src)
			if err != nil {
				return nil, fmt.Errorf("outbox row %d: bad time %q: %w", r.Seq, p.src, err)
			}
			*p.dst = t
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read outbox rows: %w", err)
	}
	return out, nil
}

// heads is the oldest pending row of each channel of an endpoint (ordered
// delivery sends only these); an index-only scan of outbox_head.
const heads = `SELECT MIN(h.seq) FROM outbox h WHERE h.endpoint = ? AND h.state = 'pending' GROUP BY h.channel`

// Due returns up to limit due rows of endpoint with their bodies, as
// DueMeta selects them (none skipped): for tools and tests that send rows
// themselves. The dispatcher uses DueMeta and Body.
func (q *Outbox) Due(ctx context.Context, endpoint string, now time.Time, limit int, ordered bool) ([]deliver.Row, error) {
	return q.due(ctx, endpoint, now, limit, ordered, nil, readBody)
}

// DueMeta implements deliver.Queue: the due rows without their bodies
// (Row.BodySize tells what each weighs), so the dispatcher can claim the
// bytes from its memory budget before it reads a body.
func (q *Outbox) DueMeta(ctx context.Context, endpoint string, now time.Time, limit int, ordered bool, skip []int64) ([]deliver.Row, error) {
	return q.due(ctx, endpoint, now, limit, ordered, skip, readSize)
}

func (q *Outbox) due(ctx context.Context, endpoint string, now time.Time, limit int, ordered bool, skip []int64, read bodyRead) ([]deliver.Row, error) {
	if q.claiming() {
		return q.claim(ctx, endpoint, now, limit, ordered, skip, read)
	}
	not, skipArgs := skipSeqs(skip)
	where := `o.endpoint = ? AND o.state = 'pending' AND ` + q.db.noIndex("o.next_attempt_at") + ` <= ?`
	if ordered {
		where = `o.seq IN (` + heads + `) AND o.next_attempt_at <= ?`
	}
	// Unordered: walk pending rows in seq order (outbox_pending) and stop at
	// limit; the unary + keeps the planner off outbox_due, which would sort.
	query := `SELECT ` + outboxColumns + read.from() + ` WHERE ` + where + not + ` ORDER BY o.seq LIMIT ?`
	args := append(append([]any{endpoint, timeText(now)}, skipArgs...), limit)
	var rows *sql.Rows
	var err error
	if len(skip) == 0 { // the common case: one query text per (ordered, read)
		rows, err = q.db.poolQuery(ctx, q.db.read, query, args...)
	} else {
		rows, err = q.db.read.QueryContext(ctx, query, args...)
	}
	if err != nil {
		return nil, fmt.Errorf("read due outbox rows: %w", err)
	}
	return q.db.scanOutbox(rows, read)
}

// skipSeqs is the condition that leaves out the rows seqs (in flight: their
// bodies are not read again) and its arguments; nothing when seqs is empty.
func skipSeqs(seqs []int64) (string, []any) {
	if len(seqs) == 0 {
		return "", nil
	}
	args := make([]any, len(seqs))
	for i, s := range seqs {
		args[i] = s
	}
	return ` AND o.seq NOT IN (` + strings.TrimSuffix(strings.Repeat("?, ", len(seqs)), ", ") + `)`, args
}

// Body implements deliver.Queue: the event JSON of row seq. A spooled
// body that is missing or damaged is a BodyDamagedError: the row stays
// pending, with the error in its last_error, and is tried again after
// damagedBodyRetry (see deferDamaged).
func (q *Outbox) Body(ctx context.Context, seq int64) ([]byte, error) {
	var sb storedBody
	err := q.db.poolQueryRow(ctx, q.db.read, `SELECT `+storedBodyColumns+` FROM event_bodies b WHERE b.seq = ?`, seq).Scan(sb.dst()...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("read body of outbox row %d: %w (retired or dropped)", seq, deliver.ErrNotPending)
	}
	if err != nil {
		return nil, fmt.Errorf("read body of outbox row %d: %w", seq, err)
	}
	body, err := q.db.loadBody(seq, sb)
	if damaged := (*BodyDamagedError)(nil); errors.As(err, &damaged) {
		q.deferDamaged(ctx, damaged)
	}
	return body, err
}

// NextDue implements deliver.Queue.
func (q *Outbox) NextDue(ctx context.Context, endpoint string, ordered bool) (time.Time, bool, error) {
	query := `SELECT MIN(o.next_attempt_at) FROM outbox o WHERE o.endpoint = ? AND o.state = 'pending'`
	if ordered {
		query = `SELECT MIN(o.next_attempt_at) FROM outbox o WHERE o.seq IN (` + heads + `)`
	}
	var next sql.NullString
	if err := q.db.poolQueryRow(ctx, q.db.read, query, endpoint).Scan(&next); err != nil {
		return time.Time{}, false, fmt.Errorf("read next due time: %w", err)
	}
	if !next.Valid {
		return time.Time{}, false, nil
	}
	t, err := parseTime(next.String)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("read next due time: %w", err)
	}
	return t, true, nil
}

// MarkAttempt implements deliver.Queue.
func (q *Outbox) MarkAttempt(ctx context.Context, seq int64, attempt int, at, next time.Time) error {
	set, where, sargs, wargs := q.holdClaim()
	args := append([]any{attempt, timeText(at), timeText(next)}, sargs...)
	args = append(append(args, seq), wargs...)
	res, err := q.db.poolExec(ctx, q.db.write, `UPDATE outbox SET attempts = ?, last_attempt_at = ?, next_attempt_at = ?`+set+`
		WHERE seq = ? AND state = 'pending'`+where, args...)
	if err != nil {
		return fmt.Errorf("record attempt %d of outbox row %d: %w", attempt, seq, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if q.claiming() {
			return fmt.Errorf("record attempt of outbox row %d: %w (or %w: its claim went to another daemon)", seq, deliver.ErrNotPending, ErrLeaseLost)
		}
		return fmt.Errorf("record attempt of outbox row %d: %w", seq, deliver.ErrNotPending)
	}
	return nil
}

// MarkDelivered implements deliver.Queue: the row and the Delivered hook
// commit in one transaction. After the commit, once enough body bytes were
// delivered since the last trim, the stored bodies are trimmed to the
// budget (noteDelivered); a failed trim never fails the delivery.
func (q *Outbox) MarkDelivered(ctx context.Context, seq int64, status int, at time.Time) error {
	var size int64
	err := q.db.Tx(ctx, func(tx *sql.Tx) error {
		var eventID, channel string
		set, where, wargs := q.releaseClaim()
		err := q.db.txQueryRow(ctx, tx, markDeliveredSQL(set, where), append([]any{status, timeText(at), seq}, wargs...)...).Scan(&eventID, &channel, &size)
		if errors.Is(err, sql.ErrNoRows) {
			// Already finished (a replay raced a late success): nothing to
			// acknowledge twice; or, in a cluster, the claim was lost.
			return q.lostClaim(ctx, tx, seq)
		}
		if err != nil {
			return fmt.Errorf("mark outbox row %d delivered: %w", seq, err)
		}
		if q.hooks.Delivered == nil {
			return nil
		}
		if err := q.hooks.Delivered(ctx, tx, eventID, channel); err != nil {
			return fmt.Errorf("acknowledge event %s: %w", eventID, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	q.db.leftPending.Add(size)
	q.db.notePendingDropped()
	q.db.noteDelivered(ctx, size)
	return nil
}

// MarkFailed implements deliver.Queue.
func (q *Outbox) MarkFailed(ctx context.Context, seq int64, status int, excerpt string, next time.Time) error {
	set, where, wargs := q.releaseClaim()
	_, err := q.db.poolExec(ctx, q.db.write, `UPDATE outbox SET last_status = ?, last_error = ?, next_attempt_at = ?`+set+`
		WHERE seq = ? AND state = 'pending'`+where,
		append([]any{status, capText(excerpt, outboxErrorBytes), timeText(next), seq}, wargs...)...)
	if err != nil {
		return fmt.Errorf("record failed attempt of outbox row %d: %w", seq, err)
	}
	return nil
}

// MarkDead implements deliver.Queue.
func (q *Outbox) MarkDead(ctx context.Context, seq int64, status int, excerpt string) error {
	return q.finish(ctx, seq, deliver.StateDead, status, excerpt)
}

// MarkRejected implements deliver.Queue.
func (q *Outbox) MarkRejected(ctx context.Context, seq int64, status int, excerpt string) error {
	return q.finish(ctx, seq, deliver.StateRejected, status, excerpt)
}

func (q *Outbox) finish(ctx context.Context, seq int64, state deliver.State, status int, excerpt string) error {
	excerpt = capText(excerpt, outboxErrorBytes)
	var size int64
	defer func() {
		q.db.leftPending.Add(size) // counted if the update ran: a rolled-back one only re-measures sooner
		q.db.notePendingDropped()  // a spurious wake-up after a failure only re-checks
	}()
	return q.db.Tx(ctx, func(tx *sql.Tx) error {
		var eventID, channel string
		set, where, wargs := q.releaseClaim()
		err := tx.QueryRowContext(ctx, `UPDATE outbox SET state = ?, last_status = ?, last_error = ?`+set+`
			WHERE seq = ? AND state = 'pending'`+where+` RETURNING event_id, channel,
			COALESCE((SELECT `+bodySize+` FROM event_bodies b WHERE b.seq = outbox.seq), 0)`,
			append([]any{string(state), status, excerpt, seq}, wargs...)...).Scan(&eventID, &channel, &size)
		if errors.Is(err, sql.ErrNoRows) {
			return q.lostClaim(ctx, tx, seq)
		}
		if err != nil {
			return fmt.Errorf("mark outbox row %d %s: %w", seq, state, err)
		}
		if q.hooks.Failed == nil {
			return nil
		}
		if err := q.hooks.Failed(ctx, tx, eventID, channel, state, excerpt); err != nil {
			return fmt.Errorf("record event %s as %s: %w", eventID, state, err)
		}
		return nil
	})
}

// capText trims s to at most n bytes on a UTF-8 boundary. A NUL byte or
// invalid UTF-8 (a receiver's binary answer) becomes U+FFFD first:
// PostgreSQL's text refuses both, and a page shows neither.
func capText(s string, n int) string {
	if strings.IndexByte(s, 0) >= 0 || !utf8.ValidString(s) {
		s = strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", "\uFFFD"), "\uFFFD")
	}
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
