package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
)

// Prepared statements of the hot path: every imported event is a ledger
// row, an outbox row and a body in its page's transaction, then one
// attempt and one acknowledgement. mattn's SQLite driver prepares and
// finalizes each statement it runs (parse, plan, free: a third of the
// store's CPU in BenchmarkOutboxBytesWritten); these are prepared once per
// connection and kept until Close. PostgreSQL's driver (pgx) already keeps
// its statements prepared per connection, so there the plain calls run.
type stmtCache struct {
	mu sync.Mutex
	m  map[stmtKey]*sql.Stmt
}

type stmtKey struct {
	pool  *sql.DB
	query string
}

// prepared returns query prepared on pool, preparing it the first time.
// Only constant query texts belong here: the cache is never pruned.
// Preparing takes one of pool's connections: never call it for the writer
// inside a transaction (txExec and txQueryRow look the cache up only).
func (db *DB) prepared(ctx context.Context, pool *sql.DB, query string) (*sql.Stmt, error) {
	if st := db.cached(pool, query); st != nil {
		return st, nil
	}
	// Prepare without the cache's lock: preparing waits for one of pool's
	// connections, and the writer's may be held by a transaction that is
	// itself waiting for the lock to look a statement up (txExec). A
	// deadlock of MarkFailed against MarkDelivered showed it.
	st, err := pool.PrepareContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("prepare statement: %w", err)
	}
	db.stmts.mu.Lock()
	defer db.stmts.mu.Unlock()
	k := stmtKey{pool, query}
	if prev, ok := db.stmts.m[k]; ok {
		st.Close() // another caller prepared it meanwhile
		return prev, nil
	}
	if db.stmts.m == nil {
		db.stmts.m = map[stmtKey]*sql.Stmt{}
	}
	db.stmts.m[k] = st
	return st, nil
}

// cached is query's statement on pool if it was prepared, else nil.
func (db *DB) cached(pool *sql.DB, query string) *sql.Stmt {
	db.stmts.mu.Lock()
	defer db.stmts.mu.Unlock()
	return db.stmts.m[stmtKey{pool, query}]
}

// txStatements are the writes of an event's life that run inside a
// transaction, prepared at Open: the single writer connection is busy
// with the transaction when they run, so they cannot be prepared then.
var txStatements = []string{insertOutbox, insertBody, insertSpooled, insertLedger, markDeliveredSQL("", ""),
	setLedgerStateSQL(2), setLedgerStateSQL(3)}

// prepareTxStatements prepares txStatements on the writer (SQLite).
func (db *DB) prepareTxStatements(ctx context.Context) error {
	if db.pg {
		return nil
	}
	for _, q := range txStatements {
		if _, err := db.prepared(ctx, db.write, q); err != nil {
			return err
		}
	}
	return nil
}

// closeStmts closes every prepared statement (Close).
func (db *DB) closeStmts() error {
	db.stmts.mu.Lock()
	defer db.stmts.mu.Unlock()
	var errs []error
	for k, st := range db.stmts.m {
		errs = append(errs, st.Close())
		delete(db.stmts.m, k)
	}
	return errors.Join(errs...)
}

// errRow is a rowScanner that fails with err.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// txExec runs query in tx, with its statement prepared at Open when it is
// one of txStatements.
func (db *DB) txExec(ctx context.Context, tx *sql.Tx, query string, args ...any) (sql.Result, error) {
	if st := db.cached(db.write, query); st != nil {
		return tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return tx.ExecContext(ctx, query, args...)
}

// txQueryRow runs query in tx, as txExec.
func (db *DB) txQueryRow(ctx context.Context, tx *sql.Tx, query string, args ...any) rowScanner {
	if st := db.cached(db.write, query); st != nil {
		return tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return tx.QueryRowContext(ctx, query, args...)
}

// poolExec runs the constant statement query on pool (outside a
// transaction), prepared once.
func (db *DB) poolExec(ctx context.Context, pool *sql.DB, query string, args ...any) (sql.Result, error) {
	if db.pg {
		return pool.ExecContext(ctx, query, args...)
	}
	st, err := db.prepared(ctx, pool, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

// poolQuery runs the constant query on pool, prepared once.
func (db *DB) poolQuery(ctx context.Context, pool *sql.DB, query string, args ...any) (*sql.Rows, error) {
	if db.pg {
		return pool.QueryContext(ctx, query, args...)
	}
	st, err := db.prepared(ctx, pool, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// poolQueryRow runs the constant query on pool, prepared once.
func (db *DB) poolQueryRow(ctx context.Context, pool *sql.DB, query string, args ...any) rowScanner {
	if db.pg {
		return pool.QueryRowContext(ctx, query, args...)
	}
	st, err := db.prepared(ctx, pool, query)
	if err != nil {
		return errRow{err}
	}
	return st.QueryRowContext(ctx, args...)
}
