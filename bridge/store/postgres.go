package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// The PostgreSQL backend is the same store over database/sql with a small
// dialect layer, so that every query, invariant and test is written once:
//
//   - the driver is pgx (pgx/v5/stdlib) wrapped so that the store's "?"
//     placeholders become PostgreSQL's "$1, $2, ..." (rebind);
//   - the migrations are the same numbered files, read through pgDialect
//     (a few type spellings, migrate.go); a step whose schema differs in
//     more than spelling has its own migrations/postgres/NNNN_*.sql;
//   - times stay RFC 3339 text in UTC, as on SQLite, so comparisons, scans
//     and the injected clock behave the same on both;
//   - a few spellings differ (db.noIndex; the lease checks use the
//     database's clock, see lease.go).

// IsPostgres reports whether database (the config's state.database) names a
// PostgreSQL server rather than the default SQLite file.
func IsPostgres(database string) bool {
	return strings.HasPrefix(database, "postgres://") || strings.HasPrefix(database, "postgresql://")
}

// OpenDatabase opens the state database the config names: PostgreSQL when
// database is a postgres:// URL, else (database "") the SQLite file in
// stateDir, exactly as Open. The token-sealing key stays in stateDir (or the
// environment) on both backends: it never lives in the database it protects.
func OpenDatabase(ctx context.Context, database, stateDir string) (*DB, error) {
	switch {
	case database == "":
		return Open(ctx, filepath.Join(stateDir, FileName))
	case IsPostgres(database):
		return OpenPostgres(ctx, database)
	default:
		return nil, fmt.Errorf("state.database %q: want a postgres:// URL, or leave it out for the SQLite file in state_dir", RedactDSN(database))
	}
}

// idleInTransaction is the default idle_in_transaction_session_timeout.
const idleInTransaction = 10 * time.Second

// postgresPool is how many connections one daemon keeps to PostgreSQL:
// the channel runners, the dispatcher and the web handlers share them.
const postgresPool = 8

// OpenPostgres connects to the PostgreSQL database of dsn (a postgres:// URL
// as libpq and pgx read it; search_path in it selects the schema) and
// applies every pending migration. Several daemons may open one database at
// once: migrations are serialised by an advisory lock.
func OpenPostgres(ctx context.Context, dsn string) (*DB, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("state.database %s: %w", RedactDSN(dsn), err)
	}
	// A daemon paused or cut off in the middle of a transaction holds the
	// lock its lease check took: the server ends such a session after this
	// long, so a takeover waits for no longer (the DSN may set another).
	if _, set := cfg.RuntimeParams["idle_in_transaction_session_timeout"]; !set {
		cfg.RuntimeParams["idle_in_transaction_session_timeout"] = strconv.Itoa(int(idleInTransaction.Milliseconds()))
	}
	db := &DB{path: RedactDSN(dsn), dsn: dsn, pg: true, Now: time.Now}
	pool := sql.OpenDB(rebindConnector{Connector: stdlib.GetConnector(*cfg), trips: &db.roundTrips})
	pool.SetMaxOpenConns(postgresPool)
	pool.SetMaxIdleConns(postgresPool)
	pool.SetConnMaxIdleTime(5 * time.Minute)
	db.write, db.read = pool, pool
	db.bodyBudget.Store(-1)
	if err := db.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to %s: %w", db.path, err)
	}
	if err := db.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// RoundTrips counts the statements sent to PostgreSQL (a transaction's
// BEGIN and COMMIT count one each): the cost the benchmarks report per
// message. Always 0 on SQLite.
func (db *DB) RoundTrips() int64 { return db.roundTrips.Load() }

// Postgres reports whether db is the PostgreSQL backend.
func (db *DB) Postgres() bool { return db.pg }

// RedactDSN drops the password of a database URL, for logs and errors.
func RedactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" {
		if strings.Contains(dsn, "password") {
			return "(unparsable database URL)"
		}
		return dsn
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// noIndex spells "use no index for this column" in a WHERE clause: SQLite's
// unary + (see Outbox.Due); PostgreSQL's planner needs no such hint.
func (db *DB) noIndex(col string) string {
	if db.pg {
		return col
	}
	return "+" + col
}

// migrationLock is the advisory lock key that serialises migrations of
// daemons starting at once on one PostgreSQL database.
const migrationLock = 0x6d333635 // "m365"

// rebind turns the store's "?" placeholders into "$1", "$2", ... outside
// quoted strings, quoted identifiers and comments.
func rebind(q string) string {
	if !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case c == '\'' || c == '"':
			j := strings.IndexByte(q[i+1:], c)
			if j < 0 {
				b.WriteString(q[i:])
				return b.String()
			}
			b.WriteString(q[i : i+j+2])
			i += j + 1
		case c == '-' && i+1 < len(q) && q[i+1] == '-':
			j := strings.IndexByte(q[i:], '\n')
			if j < 0 {
				b.WriteString(q[i:])
				return b.String()
			}
			b.WriteString(q[i : i+j+1])
			i += j
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// rebindConnector hands out pgx connections whose queries are rebound.
type rebindConnector struct {
	driver.Connector
	trips *atomic.Int64 // see DB.RoundTrips
}

func (c rebindConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	pc, ok := conn.(*stdlib.Conn)
	if !ok {
		conn.Close()
		return nil, errors.New("pgx stdlib returned an unexpected connection type")
	}
	return rebindConn{Conn: pc, trips: c.trips}, nil
}

// rebindConn is a pgx stdlib connection (all its driver interfaces by
// embedding) whose query entry points rebind placeholders.
type rebindConn struct {
	*stdlib.Conn
	trips *atomic.Int64
}

func (c rebindConn) Prepare(q string) (driver.Stmt, error) { return c.Conn.Prepare(rebind(q)) }

func (c rebindConn) PrepareContext(ctx context.Context, q string) (driver.Stmt, error) {
	return c.Conn.PrepareContext(ctx, rebind(q))
}

func (c rebindConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	c.trips.Add(1)
	return c.Conn.ExecContext(ctx, rebind(q), args)
}

func (c rebindConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	c.trips.Add(1)
	return c.Conn.QueryContext(ctx, rebind(q), args)
}

func (c rebindConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	c.trips.Add(2) // BEGIN, and COMMIT or ROLLBACK
	return c.Conn.BeginTx(ctx, opts)
}
