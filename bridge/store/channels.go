package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Channel auth states.
const (
	// ChannelNeedsConsent: configured, never connected.
	ChannelNeedsConsent = "needs_consent"
	// ChannelActive: tokens are good; the runner polls.
	ChannelActive = "active"
	// ChannelReauthRequired: Entra refused the grant; an operator must run
	// `m365bridge auth CHANNEL --reauth`. Reason and Fix say why and how.
	ChannelReauthRequired = "reauth_required"
	// ChannelError: the last refresh failed for a reason that may pass
	// (network, Entra unavailable); Reason holds the last error. The runner
	// keeps polling (each round tries the refresh again) and the first
	// refresh that succeeds makes the channel active again.
	ChannelError = "error"
)

// ErrNoChannel means no row exists for the channel name.
var ErrNoChannel = errors.New("no such channel")

// Account is the Entra ID identity bound to a channel: the mailbox owner for
// a user mailbox, the delegate for a shared one.
type Account struct {
	TenantID string // tid
	ObjectID string // oid
	UPN      string // preferred_username, for display only
	Name     string
}

// ChannelStatus is a channel's auth state row. It holds no secret.
type ChannelStatus struct {
	Name           string    `json:"name"`
	State          string    `json:"state"`
	Code           string    `json:"code,omitempty"`
	Reason         string    `json:"reason,omitempty"`
	Fix            string    `json:"fix,omitempty"`
	MailboxType    string    `json:"mailbox_type,omitempty"`
	MailboxAddress string    `json:"mailbox_address,omitempty"`
	Account        Account   `json:"account"`
	ConnectedAt    time.Time `json:"connected_at,omitzero"`
	TokenExpiry    time.Time `json:"token_expiry,omitzero"`
	LastRefresh    time.Time `json:"last_refresh,omitzero"`
	UpdatedAt      time.Time `json:"updated_at,omitzero"`
}

func ensureChannel(ctx context.Context, tx *sql.Tx, name string, now time.Time) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO channels (name, updated_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`,
		name, timeText(now))
	if err != nil {
		return fmt.Errorf("create channel %s: %w", name, err)
	}
	return nil
}

// EnsureChannels creates a needs_consent row for each configured channel
// that has none; existing rows are left alone.
func (db *DB) EnsureChannels(ctx context.Context, names []string) error {
	return db.Tx(ctx, func(tx *sql.Tx) error {
		for _, n := range names {
			if err := ensureChannel(ctx, tx, n, db.Now()); err != nil {
				return err
			}
		}
		return nil
	})
}

const channelColumns = `name, state, code, reason, fix, mailbox_type, mailbox_address,
	account_tid, account_oid, account_upn, account_name, connected_at, token_expiry, last_refresh, updated_at`

func scanChannel(r rowScanner) (ChannelStatus, error) {
	var c ChannelStatus
	var connected, expiry, refresh, updated string
	err := r.Scan(&c.Name, &c.State, &c.Code, &c.Reason, &c.Fix, &c.MailboxType, &c.MailboxAddress,
		&c.Account.TenantID, &c.Account.ObjectID, &c.Account.UPN, &c.Account.Name,
		&connected, &expiry, &refresh, &updated)
	if err != nil {
		return c, err
	}
	for _, p := range []struct {
		dst *time.Time
		src string
	}{{&c.ConnectedAt, connected}, {&c.TokenExpiry, expiry}, {&c.LastRefresh, refresh}, {&c.UpdatedAt, updated}} {
		if *p.dst, err = parseTime(p.src); err != nil {
			return c, fmt.Errorf("channel %s: bad time %q: %w", c.Name, p.src, err)
		}
	}
	return c, nil
}

// ChannelState reads one channel's row; ErrNoChannel when there is none.
// It reads through the writer so that it sees every commit.
func (db *DB) ChannelState(ctx context.Context, name string) (ChannelStatus, error) {
	c, err := scanChannel(db.write.QueryRowContext(ctx, `SELECT `+channelColumns+` FROM channels WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return ChannelStatus{}, fmt.Errorf("read channel %s: %w", name, ErrNoChannel)
	}
	if err != nil {
		return ChannelStatus{}, fmt.Errorf("read channel %s: %w", name, err)
	}
	return c, nil
}

// ChannelStateTx reads one channel's row inside tx (a caller that changes
// the state and must know what it was); ErrNoChannel when there is none.
func (db *DB) ChannelStateTx(ctx context.Context, tx *sql.Tx, name string) (ChannelStatus, error) {
	c, err := scanChannel(tx.QueryRowContext(ctx, `SELECT `+channelColumns+` FROM channels WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return ChannelStatus{}, fmt.Errorf("read channel %s: %w", name, ErrNoChannel)
	}
	if err != nil {
		return ChannelStatus{}, fmt.Errorf("read channel %s: %w", name, err)
	}
	return c, nil
}

// ChannelStates lists every channel row, by name.
func (db *DB) ChannelStates(ctx context.Context) ([]ChannelStatus, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT `+channelColumns+` FROM channels ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list channels: %w", err)
	}
	return scanAll(rows, "list channels", scanChannel)
}

// SetChannelState moves a channel to state with the code, reason and fix an
// operator sees (empty strings clear them), inside tx.
func (db *DB) SetChannelState(ctx context.Context, tx *sql.Tx, name, state, code, reason, fix string) error {
	if err := ensureChannel(ctx, tx, name, db.Now()); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `UPDATE channels SET state = ?, code = ?, reason = ?, fix = ?, updated_at = ? WHERE name = ?`,
		state, code, reason, fix, timeText(db.Now()), name)
	if err != nil {
		return fmt.Errorf("set channel %s state: %w", name, err)
	}
	return nil
}

// Binding is what a completed consent records on a channel.
type Binding struct {
	MailboxType    string
	MailboxAddress string
	Account        Account
	TokenExpiry    time.Time
}

// BindChannel records a completed consent inside tx: the channel becomes
// active with the given account and mailbox, reason and fix cleared.
func (db *DB) BindChannel(ctx context.Context, tx *sql.Tx, name string, b Binding) error {
	if err := ensureChannel(ctx, tx, name, db.Now()); err != nil {
		return err
	}
	now := timeText(db.Now())
	_, err := tx.ExecContext(ctx, `UPDATE channels SET state = ?, code = '', reason = '', fix = '',
		mailbox_type = ?, mailbox_address = ?, account_tid = ?, account_oid = ?, account_upn = ?, account_name = ?,
		connected_at = ?, token_expiry = ?, last_refresh = ?, updated_at = ? WHERE name = ?`,
		ChannelActive, b.MailboxType, b.MailboxAddress, b.Account.TenantID, b.Account.ObjectID, b.Account.UPN, b.Account.Name,
		now, timeText(b.TokenExpiry), now, now, name)
	if err != nil {
		return fmt.Errorf("bind channel %s: %w", name, err)
	}
	return nil
}

// RecordRefresh notes a successful token refresh inside tx: the new access
// token's expiry and the refresh time. A channel in state error returns to
// active; other states are left alone.
func (db *DB) RecordRefresh(ctx context.Context, tx *sql.Tx, name string, expiry time.Time) error {
	now := timeText(db.Now())
	_, err := tx.ExecContext(ctx, `UPDATE channels SET token_expiry = ?, last_refresh = ?, updated_at = ?,
		state = CASE WHEN state = 'error' THEN 'active' ELSE state END,
		code = CASE WHEN state = 'error' THEN '' ELSE code END,
		reason = CASE WHEN state = 'error' THEN '' ELSE reason END,
		fix = CASE WHEN state = 'error' THEN '' ELSE fix END
		WHERE name = ?`, timeText(expiry), now, now, name)
	if err != nil {
		return fmt.Errorf("record refresh for %s: %w", name, err)
	}
	return nil
}
