// Package store keeps the bridge's durable state in one SQLite file (the
// default) or one PostgreSQL database (state.database; see postgres.go):
// schema migrations, encrypted tokens, channel cursors, the message ledger,
// the webhook outbox and, for several daemons on one database, channel
// leases with fencing tokens (lease.go).
//
// On SQLite the database is opened twice: a writer pool of exactly one connection, whose
// transactions begin IMMEDIATE so that writers queue on the busy timeout rather
// than failing half way, and a reader pool for queries that never write. WAL
// mode lets readers run beside the writer.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/mattn/go-sqlite3" // registers the "sqlite3" driver
)

// FileName is the database file the bridge keeps in its state directory.
const FileName = "m365bridge.db"

// DB is the bridge's state database. It is safe for concurrent use.
type DB struct {
	path  string
	write *sql.DB // exactly one connection: SQLite has one writer anyway
	read  *sql.DB
	pg    bool   // PostgreSQL: write and read are one pool
	dsn   string // PostgreSQL: the unredacted DSN, for tests that reopen

	// Now is the clock used for timestamps written by the store.
	Now func() time.Time
	// Log receives what the store does on its own, such as a prompt trim
	// of delivered bodies that failed (noteDelivered); nil: slog.Default().
	Log *slog.Logger

	bodyBudget   atomic.Int64  // see SetBodyBudget
	sinceTrim    atomic.Int64  // delivered body bytes since the last trim
	trimming     atomic.Bool   // a prompt trim runs (one at a time)
	pending      pendingSignal // see PendingDropped
	leftPending  atomic.Int64  // body bytes of rows that left pending (LeftPendingBytes)
	requireLease atomic.Bool   // see RequireLeases
	// fenced holds the transactions whose lease was checked (fence): the
	// check locks the lease row until the transaction ends, so the
	// transaction's further writes need no second round trip.
	fenced     sync.Map     // *sql.Tx -> Lease
	roundTrips atomic.Int64 // PostgreSQL: see RoundTrips
	stmts      stmtCache    // the hot path's prepared statements (SQLite)
	spool      *spool       // event bodies' segment files (SQLite; spool.go)
}

// Open opens (creating when missing, with mode 0600) the database at path,
// checks that WAL mode is on and applies every pending migration.
func Open(ctx context.Context, path string) (*DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create state directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open database file: %w", err)
	}
	f.Close()
	// A file created earlier by hand, or restored from a backup, may be
	// wider open than it should be: it holds encrypted tokens and mail.
	if err := os.Chmod(path, 0o600); err != nil {
		return nil, fmt.Errorf("restrict database file: %w", err)
	}

	write := openSQLite(dsn(path, true))
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	read := openSQLite(dsn(path, false))
	read.SetMaxOpenConns(4)

	db := &DB{path: path, write: write, read: read, Now: time.Now}
	db.bodyBudget.Store(-1)
	if err := db.checkWAL(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if err := db.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if err := db.prepareTxStatements(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if db.spool, err = openSpool(path + spoolSuffix); err != nil {
		db.Close()
		return nil, err
	}
	// Segments left by a crash before their first commit, or whose rows
	// went while no trim ran, go now.
	if _, err := db.reclaimSegments(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// dsn builds the mattn/go-sqlite3 connection string; every pragma the bridge
// relies on is set here so that each pooled connection gets it.
func dsn(path string, writer bool) string {
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_busy_timeout", "10000")
	q.Set("_foreign_keys", "on")
	q.Set("_synchronous", "NORMAL")
	if writer {
		q.Set("_txlock", "immediate")
	} else {
		q.Set("mode", "rw")
	}
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

func (db *DB) checkWAL(ctx context.Context) error {
	var mode string
	if err := db.write.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("read journal mode: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("database %s: journal mode is %q, want wal (is the state directory on a network file system?)", db.path, mode)
	}
	return nil
}

// Path is the database file's path.
func (db *DB) Path() string { return db.path }

// Ping reports whether the database answers a query; readiness uses it.
func (db *DB) Ping(ctx context.Context) error {
	var one int
	if err := db.read.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("ping database: %w", err)
	}
	return nil
}

// Close closes both pools. It is safe to call more than once.
func (db *DB) Close() error {
	errs := []error{db.closeStmts()}
	if db.spool != nil {
		errs = append(errs, db.spool.close())
	}
	if db.read != nil && db.read != db.write {
		errs = append(errs, db.read.Close())
	}
	if db.write != nil {
		errs = append(errs, db.write.Close())
	}
	return errors.Join(errs...)
}

// Tx runs fn in one write transaction, committing when fn returns nil and
// rolling back otherwise. On SQLite the event bodies fn spooled
// (EnqueueTx) are synced to disk before the commit, once.
func (db *DB) Tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	defer db.fenced.Delete(tx)
	if db.spool != nil {
		db.spool.begin(tx)
		defer db.spool.end(tx) // after the commit or rollback below
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if db.spool != nil {
		if err := db.spool.sync(tx); err != nil {
			tx.Rollback()
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit transaction: %w", err)
	}
	return nil
}

// Reader is the pool for read-only queries.
func (db *DB) Reader() *sql.DB { return db.read }

// rowScanner is a *sql.Row or *sql.Rows.
type rowScanner interface{ Scan(dest ...any) error }

// scanAll reads every row of rows with scan and closes rows; what names
// the list in errors ("list channels").
func scanAll[T any](rows *sql.Rows, what string, scan func(rowScanner) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// timeText is how the store writes times: UTC, sortable, nanosecond precision.
func timeText(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000000Z") }

// parseTime reads a time written by timeText; the zero time for "".
func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	return time.Parse(time.RFC3339Nano, s)
}
