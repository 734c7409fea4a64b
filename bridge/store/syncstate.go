package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Archive decisions recorded in the sync state.
const (
	ArchiveDecidedOn  = "on"
	ArchiveDecidedOff = "off"
)

// Sync statuses.
const (
	SyncOK    = "ok"
	SyncError = "error"
)

// SyncState is a channel's sync position and summary: the resolved folder,
// the delta cursor, the archive decision, counters and the last error.
type SyncState struct {
	Channel    string `json:"channel"`
	FolderID   string `json:"folder_id,omitempty"`
	FolderPath string `json:"folder_path,omitempty"`
	// DeltaLink is the whole nextLink or deltaLink URL to resume from; ""
	// means the next round is a full sync. It carries sync state: never log it.
	DeltaLink string `json:"-"`
	// ArchiveMode is the decision in force: "" (not decided yet), on or off.
	ArchiveMode      string    `json:"archive_mode,omitempty"`
	ArchiveCutoff    time.Time `json:"archive_cutoff,omitzero"`
	ArchiveDecidedAt time.Time `json:"archive_decided_at,omitzero"`
	ArchiveReason    string    `json:"archive_reason,omitempty"`
	LastSyncAt       time.Time `json:"last_sync_at,omitzero"`
	// InitialDoneAt is when the first full pass over the folder completed.
	InitialDoneAt time.Time `json:"initial_done_at,omitzero"`
	Seen          int64     `json:"seen"`
	Archived      int64     `json:"archived"`
	New           int64     `json:"new"`
	Rejected      int64     `json:"rejected"`
	Resyncs       int64     `json:"resyncs"`
	// ProgressTotal is the folder's message count when the first pass began.
	ProgressTotal int64     `json:"progress_total,omitempty"`
	Status        string    `json:"status,omitempty"`
	ErrorCode     string    `json:"error_code,omitempty"`
	ErrorReason   string    `json:"error_reason,omitempty"`
	ErrorFix      string    `json:"error_fix,omitempty"`
	UpdatedAt     time.Time `json:"updated_at,omitzero"`
}

const syncColumns = `channel, folder_id, folder_path, delta_link, archive_mode, archive_cutoff,
	archive_decided_at, archive_reason, last_sync_at, initial_done_at, seen, archived, new, rejected,
	resyncs, progress_total, status, error_code, error_reason, error_fix, updated_at`

func scanSync(r rowScanner) (SyncState, error) {
	var s SyncState
	var cutoff, decided, last, initial, updated string
	err := r.Scan(&s.Channel, &s.FolderID, &s.FolderPath, &s.DeltaLink, &s.ArchiveMode, &cutoff,
		&decided, &s.ArchiveReason, &last, &initial, &s.Seen, &s.Archived, &s.New, &s.Rejected,
		&s.Resyncs, &s.ProgressTotal, &s.Status, &s.ErrorCode, &s.ErrorReason, &s.ErrorFix, &updated)
	if err != nil {
		return s, err
	}
	for _, p := range []struct {
		dst *time.Time
		src string
	}{{&s.ArchiveCutoff, cutoff}, {&s.ArchiveDecidedAt, decided}, {&s.LastSyncAt, last},
		{&s.InitialDoneAt, initial}, {&s.UpdatedAt, updated}} {
		if *p.dst, err = parseTime(p.src); err != nil {
			return s, fmt.Errorf("sync state %s: bad time %q: %w", s.Channel, p.src, err)
		}
	}
	return s, nil
}

type queryRower interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// SyncState reads channel's sync state; a channel never synced gives the
// zero state with Channel set.
func (db *DB) SyncState(ctx context.Context, channel string) (SyncState, error) {
	return db.syncState(ctx, db.write, channel)
}

// SyncStateTx is SyncState inside tx.
func (db *DB) SyncStateTx(ctx context.Context, tx *sql.Tx, channel string) (SyncState, error) {
	return db.syncState(ctx, tx, channel)
}

func (db *DB) syncState(ctx context.Context, q queryRower, channel string) (SyncState, error) {
	s, err := scanSync(q.QueryRowContext(ctx, `SELECT `+syncColumns+` FROM sync_state WHERE channel = ?`, channel))
	if errors.Is(err, sql.ErrNoRows) {
		return SyncState{Channel: channel}, nil
	}
	if err != nil {
		return s, fmt.Errorf("read sync state of %s: %w", channel, err)
	}
	return s, nil
}

// SyncStates lists every channel's sync state, by channel name.
func (db *DB) SyncStates(ctx context.Context) ([]SyncState, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT `+syncColumns+` FROM sync_state ORDER BY channel`)
	if err != nil {
		return nil, fmt.Errorf("list sync states: %w", err)
	}
	return scanAll(rows, "list sync states", scanSync)
}

func (db *DB) ensureSync(ctx context.Context, tx *sql.Tx, channel string) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO sync_state (channel, updated_at) VALUES (?, ?)
		ON CONFLICT (channel) DO NOTHING`, channel, timeText(db.Now()))
	if err != nil {
		return fmt.Errorf("create sync state of %s: %w", channel, err)
	}
	return nil
}

func (db *DB) updateSync(ctx context.Context, tx *sql.Tx, channel, set string, args ...any) error {
	if err := db.fence(ctx, tx, channel); err != nil {
		return fmt.Errorf("update sync state of %s: %w", channel, err)
	}
	if err := db.ensureSync(ctx, tx, channel); err != nil {
		return err
	}
	args = append(args, timeText(db.Now()), channel)
	if _, err := tx.ExecContext(ctx, `UPDATE sync_state SET `+set+`, updated_at = ? WHERE channel = ?`, args...); err != nil {
		return fmt.Errorf("update sync state of %s: %w", channel, err)
	}
	return nil
}

// SetFolder records the resolved folder id for the configured path. A new
// path or id (the folder was recreated, or the configuration changed)
// clears the delta cursor, because a cursor belongs to one folder.
func (db *DB) SetFolder(ctx context.Context, channel, path, id string) error {
	return db.Tx(ctx, func(tx *sql.Tx) error {
		cur, err := db.SyncStateTx(ctx, tx, channel)
		if err != nil {
			return err
		}
		if cur.FolderID == id && cur.FolderPath == path {
			return nil
		}
		return db.updateSync(ctx, tx, channel, `folder_id = ?, folder_path = ?, delta_link = ''`, id, path)
	})
}

// PageCounts are what one committed delta page added to the counters.
type PageCounts struct {
	Seen, Archived, New, Rejected int64
}

// AdvanceCursorTx stores link (the page's nextLink, or the round's final
// deltaLink) and adds counts, inside the transaction that records the page's
// messages (DESIGN.md invariant 4). final marks the end of a complete pass.
func (db *DB) AdvanceCursorTx(ctx context.Context, tx *sql.Tx, channel, link string, c PageCounts, final bool) error {
	set := `delta_link = ?, seen = seen + ?, archived = archived + ?, new = new + ?, rejected = rejected + ?`
	args := []any{link, c.Seen, c.Archived, c.New, c.Rejected}
	if final {
		set += `, initial_done_at = CASE WHEN initial_done_at = '' THEN ? ELSE initial_done_at END`
		args = append(args, timeText(db.Now()))
	}
	return db.updateSync(ctx, tx, channel, set, args...)
}

// ResetCursor drops channel's delta cursor (it expired on the Graph side):
// the next round is a full resync, de-duplicated by the ledger.
func (db *DB) ResetCursor(ctx context.Context, channel string) error {
	return db.Tx(ctx, func(tx *sql.Tx) error {
		return db.updateSync(ctx, tx, channel, `delta_link = '', resyncs = resyncs + 1`)
	})
}

// DecideArchive records the archive decision once: mode on (with cutoff)
// or off, and why. A decision already recorded is kept, and returned.
func (db *DB) DecideArchive(ctx context.Context, channel, mode string, cutoff time.Time, reason string, total int64) (SyncState, error) {
	var out SyncState
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		cur, err := db.SyncStateTx(ctx, tx, channel)
		if err != nil {
			return err
		}
		if cur.ArchiveMode == "" {
			if err := db.updateSync(ctx, tx, channel, `archive_mode = ?, archive_cutoff = ?, archive_decided_at = ?,
				archive_reason = ?, progress_total = ?`,
				mode, optTime(cutoff), timeText(db.Now()), reason, total); err != nil {
				return err
			}
		}
		out, err = db.SyncStateTx(ctx, tx, channel)
		return err
	})
	return out, err
}

// RecordSyncResult stores the outcome of a sync round: status ok clears the
// error; status error keeps code, reason and fix for `m365bridge channels`.
func (db *DB) RecordSyncResult(ctx context.Context, channel, status, code, reason, fix string) error {
	_, err := db.SwapSyncResult(ctx, channel, status, code, reason, fix)
	return err
}

// SwapSyncResult is RecordSyncResult that also returns the outcome it
// replaced (Status and ErrorCode of the previous round), read in the same
// transaction: the runner tells the helpdesk about a channel entering or
// leaving an error from it, and the previous outcome survives a restart.
func (db *DB) SwapSyncResult(ctx context.Context, channel, status, code, reason, fix string) (prev SyncState, err error) {
	err = db.Tx(ctx, func(tx *sql.Tx) error {
		if prev, err = db.SyncStateTx(ctx, tx, channel); err != nil {
			return err
		}
		return db.updateSync(ctx, tx, channel, `status = ?, error_code = ?, error_reason = ?, error_fix = ?, last_sync_at = ?`,
			status, code, reason, fix, timeText(db.Now()))
	})
	return prev, err
}
