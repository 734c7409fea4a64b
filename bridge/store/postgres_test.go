package store

import (
	"context"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/m365bridge/m365bridge/bridge/store/storetest"
)

func TestRebind(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`SELECT 1`, `SELECT 1`},
		{`WHERE a = ? AND b IN (?, ?)`, `WHERE a = $1 AND b IN ($2, $3)`},
		{`SELECT '?', "we?ird" FROM t WHERE x = ?`, `SELECT '?', "we?ird" FROM t WHERE x = $1`},
		{"-- what?\nSELECT ? -- and?\n, ?", "-- what?\nSELECT $1 -- and?\n, $2"},
		{`WHERE s = 'it''s ?' AND t = ?`, `WHERE s = 'it''s ?' AND t = $1`},
		{`x = ?::bigint`, `x = $1::bigint`},
	} {
		if got := rebind(tc.in); got != tc.want {
			t.Errorf("rebind(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestMigrationDialectsAligned: every SQLite migration has its PostgreSQL
// dialect with the same number and name, and no more, so a later step is
// added to both.
func TestMigrationDialectsAligned(t *testing.T) {
	lite, err := loadMigrations(migrationFiles, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	pg, err := postgresMigrations(lite)
	if err != nil {
		t.Fatal(err)
	}
	if len(lite) != len(pg) {
		t.Fatalf("%d SQLite steps, %d PostgreSQL steps: want the same steps", len(lite), len(pg))
	}
	for i := range lite {
		if lite[i].version != pg[i].version || lite[i].name != pg[i].name {
			t.Errorf("step %d: %04d_%s on SQLite, %04d_%s on PostgreSQL", i, lite[i].version, lite[i].name, pg[i].version, pg[i].name)
		}
		for _, sqliteOnly := range []string{"STRICT", "AUTOINCREMENT", "BLOB", "INTEGER"} {
			if strings.Contains(pg[i].sql, sqliteOnly) {
				t.Errorf("PostgreSQL step %04d_%s still says %s", pg[i].version, pg[i].name, sqliteOnly)
			}
		}
	}
	// The SQLite directory holds only its own files (the glob is not recursive).
	files, _ := fs.Glob(migrationFiles, "migrations/*.sql")
	if len(files) != len(lite) {
		t.Errorf("%d files, %d migrations", len(files), len(lite))
	}
}

func TestOpenDatabaseChoosesBackend(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := OpenDatabase(ctx, "", dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if db.Postgres() || db.Path() != filepath.Join(dir, FileName) {
		t.Errorf("no state.database: postgres %v, path %s; want the SQLite file in state_dir", db.Postgres(), db.Path())
	}
	_, err = OpenDatabase(ctx, "mysql://u:hunter2@db/x", dir)
	if err == nil || !strings.Contains(err.Error(), "postgres://") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("a non-postgres URL: %v; want an error naming postgres:// without the password", err)
	}
	if got := RedactDSN("postgres://u:hunter2@db:5432/x?sslmode=disable"); strings.Contains(got, "hunter2") {
		t.Errorf("RedactDSN kept the password: %s", got)
	}
}

// TestPostgresDaemonsMigrateAtOnce: several daemons starting together on
// one new database apply each migration once (the advisory lock).
func TestPostgresDaemonsMigrateAtOnce(t *testing.T) {
	dsn := storetest.Postgres(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, 4)
	dbs := make([]*DB, 4)
	for i := range dbs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dbs[i], errs[i] = OpenPostgres(ctx, dsn)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("daemon %d: %v", i, err)
		}
		defer dbs[i].Close()
	}
	ms, err := dbs[0].loadDialect()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := dbs[0].read.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != len(ms) {
		t.Errorf("%d migration rows, want %d", n, len(ms))
	}
}
