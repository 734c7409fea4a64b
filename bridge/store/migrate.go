package store

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

//go:embed migrations/*.sql migrations/postgres/*.sql
var migrationFiles embed.FS

// migrationDir is where the dialect's migrations are: the SQLite files, or
// their PostgreSQL dialect with the same numbers and names.
func (db *DB) migrationDir() string {
	if db.pg {
		return "migrations/postgres"
	}
	return "migrations"
}

// migration is one numbered schema step, applied once, in its own transaction.
type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations reads dir's NNNN_name.sql files, ordered by number. Two files with
// one number, or a name without a number, are programming errors reported
// before anything is applied.
func loadMigrations(fsys fs.FS, dir string) ([]migration, error) {
	names, err := fs.Glob(fsys, dir+"/*.sql")
	if err != nil {
		return nil, err
	}
	seen := map[int]string{}
	var out []migration
	for _, name := range names {
		base := path.Base(name)
		num, rest, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must be NNNN_description.sql", base)
		}
		if prev, dup := seen[v]; dup {
			return nil, fmt.Errorf("migrations %s and %s share version %d", prev, base, v)
		}
		seen[v] = base
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: strings.TrimSuffix(rest, ".sql"), sql: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	return out, nil
}

func (db *DB) migrate(ctx context.Context) error {
	ms, err := loadMigrations(migrationFiles, db.migrationDir())
	if err != nil {
		return fmt.Errorf("load migrations: %w", err)
	}
	return db.applyMigrations(ctx, ms)
}

func (db *DB) applyMigrations(ctx context.Context, ms []migration) error {
	ddl := `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at TEXT NOT NULL
	) STRICT`
	if db.pg {
		ddl = strings.TrimSuffix(ddl, " STRICT")
	}
	// On PostgreSQL several daemons may start at once: each step takes the
	// advisory lock and re-reads what is applied (lockMigrations).
	if err := db.Tx(ctx, func(tx *sql.Tx) error {
		if err := db.lockMigrations(ctx, tx); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, ddl)
		return err
	}); err != nil {
		return fmt.Errorf("create migrations table: %w", err)
	}
	applied, err := db.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	if n := len(ms); n > 0 && applied > ms[n-1].version {
		return fmt.Errorf("database schema version %d is newer than this binary knows (%d): run the newer m365bridge or restore a backup", applied, ms[n-1].version)
	}
	for _, m := range ms {
		if m.version <= applied {
			continue
		}
		err := db.Tx(ctx, func(tx *sql.Tx) error {
			if err := db.lockMigrations(ctx, tx); err != nil {
				return err
			}
			var done int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = ?`, m.version).Scan(&done); err != nil {
				return err
			}
			if done > 0 {
				return nil // another daemon applied it meanwhile
			}
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
				m.version, m.name, timeText(db.Now()))
			return err
		})
		if err != nil {
			return fmt.Errorf("apply migration %04d_%s: %w", m.version, m.name, err)
		}
	}
	return nil
}

// SchemaVersion is the highest migration applied, 0 on a new database.
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	var v sql.NullInt64
	if err := db.write.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return int(v.Int64), nil
}

// lockMigrations takes, on PostgreSQL, the transaction's advisory lock that
// serialises migrations across daemons; SQLite's one writer already does.
func (db *DB) lockMigrations(ctx context.Context, tx *sql.Tx) error {
	if !db.pg {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(?)`, int64(migrationLock)); err != nil {
		return fmt.Errorf("lock migrations: %w", err)
	}
	return nil
}
