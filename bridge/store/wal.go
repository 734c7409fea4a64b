package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"

	"github.com/mattn/go-sqlite3"
)

// walSizeLimit is the journal_size_limit of every SQLite connection: when
// a checkpoint lets the writer start the WAL over, a file grown past it is
// truncated back to it. A WAL normally peaks near the 1,000 pages of the
// automatic checkpoint (about 4 MiB), so this does not truncate and regrow
// it every cycle; one a long-lived read inflated (a checkpoint cannot pass
// a reader's snapshot, so every commit meanwhile appends) shrinks back
// once that reader ends, instead of keeping its size for good.
const walSizeLimit = 8 << 20

// sqliteConnector opens mattn/go-sqlite3 connections of dsn with the
// pragmas the DSN has no parameter for (journal_size_limit).
type sqliteConnector struct {
	dsn string
	drv *sqlite3.SQLiteDriver
}

func openSQLite(dsn string) *sql.DB {
	drv := &sqlite3.SQLiteDriver{ConnectHook: func(c *sqlite3.SQLiteConn) error {
		if _, err := c.Exec(fmt.Sprintf("PRAGMA journal_size_limit = %d", walSizeLimit), nil); err != nil {
			return fmt.Errorf("set journal_size_limit: %w", err)
		}
		return nil
	}}
	return sql.OpenDB(sqliteConnector{dsn: dsn, drv: drv})
}

func (c sqliteConnector) Connect(context.Context) (driver.Conn, error) { return c.drv.Open(c.dsn) }

func (c sqliteConnector) Driver() driver.Driver { return c.drv }
