package store

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/m365bridge/m365bridge/bridge/store/storetest"
)

// backend is one store backend the contract suite runs on: every test
// wrapped in eachBackend runs on SQLite and on PostgreSQL, unchanged.
type backend struct {
	name string
	// open opens a fresh, empty, migrated database for t.
	open func(t *testing.T) *DB
	// reopen opens a second handle on db's database (a restart).
	reopen func(t *testing.T, db *DB) *DB
}

var backends = []backend{
	{
		name: "sqlite",
		open: func(t *testing.T) *DB {
			t.Helper()
			db, err := Open(context.Background(), filepath.Join(t.TempDir(), FileName))
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			t.Cleanup(func() { db.Close() })
			return db
		},
		reopen: func(t *testing.T, db *DB) *DB {
			t.Helper()
			db2, err := Open(context.Background(), db.Path())
			if err != nil {
				t.Fatalf("reopen: %v", err)
			}
			t.Cleanup(func() { db2.Close() })
			return db2
		},
	},
	{
		name: "postgres",
		open: func(t *testing.T) *DB {
			t.Helper()
			dsn := storetest.Postgres(t)
			db, err := OpenPostgres(context.Background(), dsn)
			if err != nil {
				t.Fatalf("OpenPostgres: %v", err)
			}
			t.Cleanup(func() { db.Close() })
			return db
		},
		reopen: func(t *testing.T, db *DB) *DB {
			t.Helper()
			db2, err := OpenPostgres(context.Background(), db.dsn)
			if err != nil {
				t.Fatalf("reopen: %v", err)
			}
			t.Cleanup(func() { db2.Close() })
			return db2
		},
	},
}

// eachBackend runs fn as a subtest per backend, in parallel.
func eachBackend(t *testing.T, fn func(t *testing.T, b backend)) {
	t.Helper()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			fn(t, b)
		})
	}
}

// openOutbox opens a fresh database whose clock is fixed at the test epoch
// and moved by the test through the returned pointer.
func (b backend) openOutbox(t *testing.T) (*DB, *time.Time) {
	t.Helper()
	db := b.open(t)
	now := testEpoch(t)
	db.Now = func() time.Time { return now }
	return db, &now
}
