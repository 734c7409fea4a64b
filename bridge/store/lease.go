package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Channel leases: each channel is owned by at most one daemon at a time.
//
// A daemon acquires a channel's lease (AcquireLease), renews it well before
// it expires (RenewLease) and releases it when it stops or hands the channel
// over (ReleaseLease). Every acquisition by a new owner gives the channel a
// fencing token one higher than any before. The daemon puts its lease into
// the context of the channel's work (WithLease); every write of that
// channel's ledger, cursor or outbox rows then checks, inside its own
// transaction, that the lease is still the channel's current one and not
// expired, and fails with ErrLeaseLost otherwise — so a daemon that was
// paused, partitioned or slow past its lease commits nothing afterwards.
//
// Whose clock: on PostgreSQL expiry is judged by the database's clock
// (now()), the one clock every daemon shares; a daemon's own clock may be
// skewed and is never compared with another's. The check takes a share lock
// on the lease row, so a takeover (which updates the row) waits for a
// checked write to commit: all writes under token N commit before token N+1
// exists. On SQLite (one daemon) the store's injected clock (DB.Now) is
// used, and AcquireLease always grants: there is no other daemon to wait
// for, and a restarted daemon must not wait for its dead predecessor's
// lease to run out.

// ErrLeaseLost is returned (wrapped) by a fenced write whose lease is no
// longer the channel's current one, or has expired, and by RenewLease and
// ReleaseLease for such a lease. Nothing of that write was committed.
var ErrLeaseLost = errors.New("channel lease lost")

// ErrLeaseHeld is returned (wrapped) by AcquireLease when another daemon
// holds an unexpired lease on the channel.
var ErrLeaseHeld = errors.New("channel lease held by another daemon")

// Lease is a daemon's hold on one channel.
type Lease struct {
	Channel string
	Owner   string // the daemon's id
	Token   int64  // fencing token: grows with every change of owner
	// Expires is when the lease runs out, by the clock that judges it (see
	// the package notes): the database's on PostgreSQL.
	Expires time.Time
}

// LeaseInfo is one row of the lease table, for the status page and the
// admin API: which daemon owns which channel, since when.
type LeaseInfo struct {
	Lease
	Acquired time.Time
	Renewed  time.Time
	Live     bool // unexpired when read, by the judging clock
}

type leaseKey struct{}

// WithLease returns a context whose channel writes are fenced by l.
func WithLease(ctx context.Context, l Lease) context.Context {
	return context.WithValue(ctx, leaseKey{}, l)
}

// LeaseFrom returns the lease WithLease put in ctx.
func LeaseFrom(ctx context.Context) (Lease, bool) {
	l, ok := ctx.Value(leaseKey{}).(Lease)
	return l, ok
}

type unfencedKey struct{}

// Unfenced returns a context for a write that belongs to no channel's sync
// and so needs no lease even under RequireLeases: a channel notice queued
// by the consent callback or the token manager on whichever daemon they
// ran (channel.connected, channel.reauth_required). It is the one explicit
// way out; the runner's and the send worker's writes carry their lease.
func Unfenced(ctx context.Context) context.Context {
	return context.WithValue(ctx, unfencedKey{}, true)
}

// RequireLeases makes every fenced write without a lease in its context
// fail with ErrLeaseLost: a daemon sharing the database with others turns
// it on, so that a write path that forgot its lease is an error, not an
// unfenced write. Off by default (one daemon; tools; tests).
func (db *DB) RequireLeases(on bool) { db.requireLease.Store(on) }

// fence checks, inside tx, the lease ctx carries for channel (see the
// package notes). A write for another channel than the lease's is refused:
// it would be unfenced.
func (db *DB) fence(ctx context.Context, tx *sql.Tx, channel string) error {
	l, ok := LeaseFrom(ctx)
	if !ok {
		if db.requireLease.Load() && ctx.Value(unfencedKey{}) == nil {
			return fmt.Errorf("write for channel %q without a lease: %w", channel, ErrLeaseLost)
		}
		return nil
	}
	if l.Channel != channel {
		return fmt.Errorf("write for channel %q under the lease of channel %q: %w", channel, l.Channel, ErrLeaseLost)
	}
	if done, ok := db.fenced.Load(tx); ok && done.(Lease) == l {
		return nil // checked in this transaction, and the row is locked till its end
	}
	now, args := db.leaseNow()
	q := `SELECT token FROM channel_leases WHERE channel = ? AND owner = ? AND expires_at > ` + now
	if db.pg {
		q += ` FOR SHARE`
	}
	var token int64
	err := tx.QueryRowContext(ctx, q, append([]any{channel, l.Owner}, args...)...).Scan(&token)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && token != l.Token) {
		return fmt.Errorf("channel %s, token %d of %s: %w", channel, l.Token, l.Owner, ErrLeaseLost)
	}
	if err != nil {
		return fmt.Errorf("check lease of channel %s: %w", channel, err)
	}
	db.fenced.Store(tx, l)
	return nil
}

// leaseNow is the SQL for "now" by the lease clock, with its arguments.
func (db *DB) leaseNow() (string, []any) {
	if db.pg {
		return `now()`, nil
	}
	return `?`, []any{timeText(db.Now())}
}

// leaseAt is the SQL for "now + d" by the lease clock, with its arguments.
func (db *DB) leaseAt(d time.Duration) (string, []any) {
	if db.pg {
		return `(now() + ?::bigint * interval '1 microsecond')`, []any{d.Microseconds()}
	}
	return `?`, []any{timeText(db.Now().Add(d))}
}

// AcquireLease gives owner the lease of channel for ttl: when nobody holds
// it, when the holder's lease has expired, or when owner holds it already
// (then it is renewed and keeps its token). A change of owner (or a lapse)
// raises the fencing token. Another daemon's unexpired lease is
// ErrLeaseHeld (on PostgreSQL; on SQLite the lease is always granted).
func (db *DB) AcquireLease(ctx context.Context, channel, owner string, ttl time.Duration) (Lease, error) {
	if channel == "" || owner == "" || ttl <= 0 {
		return Lease{}, fmt.Errorf("acquire lease: channel, owner and a positive ttl are required (got %q, %q, %s)", channel, owner, ttl)
	}
	var args []any
	arg := func(s string, a []any) string { args = append(args, a...); return s }
	q := `INSERT INTO channel_leases (channel, owner, token, expires_at, acquired_at, renewed_at) VALUES (?, ?, 1, `
	args = append(args, channel, owner)
	q += arg(db.leaseAt(ttl)) + `, ` + arg(db.leaseNow()) + `, ` + arg(db.leaseNow()) + `)
		ON CONFLICT (channel) DO UPDATE SET
			token = CASE WHEN channel_leases.owner = excluded.owner AND channel_leases.expires_at > ` + arg(db.leaseNow()) + `
				THEN channel_leases.token ELSE channel_leases.token + 1 END,
			acquired_at = CASE WHEN channel_leases.owner = excluded.owner AND channel_leases.expires_at > ` + arg(db.leaseNow()) + `
				THEN channel_leases.acquired_at ELSE excluded.acquired_at END,
			owner = excluded.owner, expires_at = excluded.expires_at, renewed_at = excluded.renewed_at`
	if db.pg {
		q += ` WHERE channel_leases.owner = excluded.owner OR channel_leases.expires_at <= ` + arg(db.leaseNow())
	}
	q += ` RETURNING token, expires_at`
	l := Lease{Channel: channel, Owner: owner}
	var exp dbTime
	err := db.write.QueryRowContext(ctx, q, args...).Scan(&l.Token, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		return Lease{}, fmt.Errorf("acquire lease of channel %s: %w", channel, ErrLeaseHeld)
	}
	if err != nil {
		return Lease{}, fmt.Errorf("acquire lease of channel %s: %w", channel, err)
	}
	l.Expires = exp.Time
	return l, nil
}

// RenewLease extends l by ttl from now. A lease that expired or changed
// hands meanwhile is ErrLeaseLost: the daemon must stop the channel's work
// (its writes would fail anyway) and may try AcquireLease again.
func (db *DB) RenewLease(ctx context.Context, l Lease, ttl time.Duration) (Lease, error) {
	var args []any
	arg := func(s string, a []any) string { args = append(args, a...); return s }
	q := `UPDATE channel_leases SET expires_at = ` + arg(db.leaseAt(ttl)) + `, renewed_at = ` + arg(db.leaseNow())
	q += ` WHERE channel = ? AND owner = ? AND token = ?`
	args = append(args, l.Channel, l.Owner, l.Token)
	q += ` AND expires_at > ` + arg(db.leaseNow()) + ` RETURNING expires_at`
	var exp dbTime
	err := db.write.QueryRowContext(ctx, q, args...).Scan(&exp)
	if errors.Is(err, sql.ErrNoRows) {
		return l, fmt.Errorf("renew lease of channel %s (token %d): %w", l.Channel, l.Token, ErrLeaseLost)
	}
	if err != nil {
		return l, fmt.Errorf("renew lease of channel %s: %w", l.Channel, err)
	}
	l.Expires = exp.Time
	return l, nil
}

// ReleaseLease ends l now, so that another daemon may take the channel at
// once (a clean shutdown, or a hand-over when the assignment changes). The
// token stays: the next owner's is higher. A lease already lost is
// ErrLeaseLost.
func (db *DB) ReleaseLease(ctx context.Context, l Lease) error {
	var args []any
	arg := func(s string, a []any) string { args = append(args, a...); return s }
	q := `UPDATE channel_leases SET expires_at = ` + arg(db.leaseNow()) + ` WHERE channel = ? AND owner = ? AND token = ?`
	args = append(args, l.Channel, l.Owner, l.Token)
	res, err := db.write.ExecContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("release lease of channel %s: %w", l.Channel, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("release lease of channel %s (token %d): %w", l.Channel, l.Token, ErrLeaseLost)
	}
	return nil
}

// Leases lists every channel's lease, by channel, for the status page and
// the admin API.
func (db *DB) Leases(ctx context.Context) ([]LeaseInfo, error) {
	now, args := db.leaseNow()
	rows, err := db.read.QueryContext(ctx, `SELECT channel, owner, token, expires_at, acquired_at, renewed_at,
		CASE WHEN expires_at > `+now+` THEN 1 ELSE 0 END FROM channel_leases ORDER BY channel`, args...)
	if err != nil {
		return nil, fmt.Errorf("list leases: %w", err)
	}
	return scanAll(rows, "list leases", func(r rowScanner) (LeaseInfo, error) {
		var li LeaseInfo
		var exp, acq, ren dbTime
		var live int
		err := r.Scan(&li.Channel, &li.Owner, &li.Token, &exp, &acq, &ren, &live)
		li.Expires, li.Acquired, li.Renewed, li.Live = exp.Time, acq.Time, ren.Time, live == 1
		return li, err
	})
}

// dbTime scans a time the store wrote: RFC 3339 text (SQLite, and every
// time column outside the lease tables) or a timestamptz (PostgreSQL's
// lease, member and claim columns).
type dbTime struct{ time.Time }

func (t *dbTime) Scan(v any) error {
	switch x := v.(type) {
	case nil:
		t.Time = time.Time{}
	case time.Time:
		t.Time = x.UTC()
	case string:
		p, err := parseTime(x)
		if err != nil {
			return err
		}
		t.Time = p
	case []byte:
		return t.Scan(string(x))
	default:
		return fmt.Errorf("scan time: unexpected %T", v)
	}
	return nil
}
