package store

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

func openTemp(t *testing.T) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state", FileName)
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

func TestOpenCreatesOwnerOnlyFile(t *testing.T) {
	db, path := openTemp(t)
	// A write creates the WAL and shared-memory files; SQLite gives them the
	// database file's mode, which must hold for them too (they hold data).
	if err := db.Enqueue(context.Background(), OutboxEvent{EventID: "evt_mode", Endpoint: "e", Channel: "c", Type: "t", Body: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("%s mode = %v, want 0600", filepath.Base(p), got)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fi.Mode().Perm(), os.FileMode(0o600); got != want {
		t.Errorf("database mode = %v, want %v", got, want)
	}
	dir, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if got := dir.Mode().Perm(); got&0o077 != 0 {
		t.Errorf("state directory mode = %v, want no group/other access", got)
	}
}

func TestOpenTightensExistingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	fi, _ := os.Stat(path)
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("mode = %v, want 0600", got)
	}
}

func TestWALMode(t *testing.T) {
	db, _ := openTemp(t)
	var mode string
	if err := db.Reader().QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" {
		t.Errorf("journal_mode = %q, want wal", mode)
	}
	var fk int
	if err := db.write.QueryRow("PRAGMA foreign_keys").Scan(&fk); err != nil {
		t.Fatal(err)
	}
	if fk != 1 {
		t.Errorf("foreign_keys = %d, want 1", fk)
	}
}

func TestMigrationsIdempotentAcrossRestarts(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), FileName)
	ms, err := loadMigrations(migrationFiles, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	want := ms[len(ms)-1].version
	for i := 0; i < 3; i++ {
		db, err := Open(ctx, path)
		if err != nil {
			t.Fatalf("open #%d: %v", i+1, err)
		}
		got, err := db.SchemaVersion(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("open #%d: schema version %d, want %d", i+1, got, want)
		}
		var rows int
		db.Reader().QueryRow("SELECT COUNT(*) FROM schema_migrations").Scan(&rows)
		if rows != len(ms) {
			t.Errorf("open #%d: %d migration rows, want %d (a migration ran twice?)", i+1, rows, len(ms))
		}
		db.Close()
	}
}

func TestMigrationFailureRollsBackThatStepOnly(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	before, _ := db.SchemaVersion(ctx)
	good := migration{version: 900, name: "good", sql: "CREATE TABLE t_good (x INTEGER)"}
	bad := migration{version: 901, name: "bad", sql: "CREATE TABLE t_bad (x INTEGER); INSERT INTO nowhere VALUES (1)"}
	err := db.applyMigrations(ctx, []migration{good, bad})
	if err == nil || !strings.Contains(err.Error(), "0901_bad") {
		t.Fatalf("err = %v, want it to name 0901_bad", err)
	}
	got, _ := db.SchemaVersion(ctx)
	if got != 900 || before >= 900 {
		t.Errorf("schema version = %d, want 900 (the good step kept, the bad one rolled back)", got)
	}
	var n int
	db.Reader().QueryRow("SELECT COUNT(*) FROM sqlite_master WHERE name = 't_bad'").Scan(&n)
	if n != 0 {
		t.Error("t_bad exists: the failed migration was not rolled back")
	}
}

func TestLoadMigrationsRejectsBadNames(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"duplicate version", map[string]string{"migrations/0001_a.sql": "", "migrations/0001_b.sql": ""}, "share version 1"},
		{"no number", map[string]string{"migrations/init.sql": ""}, "NNNN_description.sql"},
		{"zero", map[string]string{"migrations/0000_x.sql": ""}, "NNNN_description.sql"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			for n, body := range tt.files {
				fsys[n] = &fstest.MapFile{Data: []byte(body)}
			}
			_, err := loadMigrations(fsys, "migrations")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestNewerSchemaIsRefused(t *testing.T) {
	ctx := context.Background()
	db, path := openTemp(t)
	if _, err := db.write.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'future', 'x')`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err := Open(ctx, path)
	if err == nil || !strings.Contains(err.Error(), "newer than this binary") {
		t.Fatalf("err = %v, want a newer-schema error", err)
	}
}
