package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestKeyringSealOpen(t *testing.T) {
	k1, err := NewKeyring(bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	sealed := k1.Seal([]byte("secret-token"), "tokens.refresh_token/a")
	if bytes.Contains(sealed, []byte("secret-token")) {
		t.Fatal("ciphertext contains the plaintext")
	}
	t.Run("round trip", func(t *testing.T) {
		got, err := k1.Open(sealed, "tokens.refresh_token/a")
		if err != nil || string(got) != "secret-token" {
			t.Fatalf("Open = %q, %v; want secret-token", got, err)
		}
	})
	t.Run("other row", func(t *testing.T) {
		if _, err := k1.Open(sealed, "tokens.refresh_token/b"); err == nil {
			t.Fatal("opened a ciphertext moved to another row")
		}
	})
	t.Run("tampered", func(t *testing.T) {
		bad := append([]byte(nil), sealed...)
		bad[len(bad)-1] ^= 1
		if _, err := k1.Open(bad, "tokens.refresh_token/a"); err == nil {
			t.Fatal("opened a tampered ciphertext")
		}
	})
	t.Run("unknown key", func(t *testing.T) {
		k2, _ := NewKeyring(bytes.Repeat([]byte{2}, 32))
		if _, err := k2.Open(sealed, "tokens.refresh_token/a"); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("err = %v, want ErrUnknownKey", err)
		}
	})
	t.Run("old key opens", func(t *testing.T) {
		k2, _ := NewKeyring(bytes.Repeat([]byte{2}, 32), bytes.Repeat([]byte{1}, 32))
		got, err := k2.Open(sealed, "tokens.refresh_token/a")
		if err != nil || string(got) != "secret-token" {
			t.Fatalf("Open = %q, %v", got, err)
		}
		id, _ := SealedKeyID(k2.Seal([]byte("x"), "a"))
		if id != k2.KeyID() || id == k1.KeyID() {
			t.Fatalf("new seal key id %s, want current %s", id, k2.KeyID())
		}
	})
}

func TestParseKey(t *testing.T) {
	good := GenerateKey()
	tests := []struct {
		name, in string
		ok       bool
	}{
		{"generated", good, true},
		{"with newline", good + "\n", true},
		{"short", "AAAA", false},
		{"not base64", "!!!!", false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseKey(tt.in)
			if got := err == nil; got != tt.ok {
				t.Fatalf("ParseKey(%q) err = %v, want ok=%v", tt.in, err, tt.ok)
			}
		})
	}
}

func TestLoadKeyringCreatesFile(t *testing.T) {
	dir := t.TempDir()
	k, err := LoadKeyring(dir, env(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, KeyFileName))
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != 0o600 {
		t.Fatalf("key file mode %o, want 600", got)
	}
	again, err := LoadKeyring(dir, env(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if again.KeyID() != k.KeyID() {
		t.Fatalf("second load key id %s, want %s", again.KeyID(), k.KeyID())
	}
	fromEnv, err := LoadKeyring(dir, env(map[string]string{KeyEnv: GenerateKey()}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if fromEnv.KeyID() == k.KeyID() || !strings.Contains(fromEnv.Source, KeyEnv) {
		t.Fatalf("env key not preferred: %s from %s", fromEnv.KeyID(), fromEnv.Source)
	}
	if _, err := LoadKeyring(dir, env(map[string]string{KeyEnv: "short"}), nil); err == nil {
		t.Fatal("bad env key accepted")
	}
}

func openTestDB(t *testing.T) *DB {
	t.Helper()
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), FileName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestRotateKeyFile(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		db := b.open(t)
		dir := t.TempDir() // the key lives outside the database, on both backends
		keys, err := LoadKeyring(dir, env(nil), nil)
		if err != nil {
			t.Fatal(err)
		}
		v := NewVault(db, keys)
		want := Tokens{Access: "at-1", Refresh: "rt-1", Expiry: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
		if err := db.EnsureChannels(ctx, []string{"a", "b"}); err != nil {
			t.Fatal(err)
		}
		for _, ch := range []string{"a", "b"} {
			if err := db.Tx(ctx, func(tx *sql.Tx) error { return v.SaveTokens(ctx, tx, ch, want) }); err != nil {
				t.Fatal(err)
			}
		}
		res, err := RotateKey(ctx, db, dir, env(nil), nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Rows != 2 || res.OldKeyID != keys.KeyID() || res.NewKeyID == res.OldKeyID {
			t.Fatalf("rotation = %+v, want 2 rows from key %s", res, keys.KeyID())
		}
		if _, err := os.Stat(filepath.Join(dir, OldKeyFileName)); !os.IsNotExist(err) {
			t.Fatalf("old key file still there: %v", err)
		}
		newKeys, err := LoadKeyring(dir, env(nil), nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := NewVault(db, newKeys).LoadTokens(ctx, "a")
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("after rotation tokens = %+v, want %+v", got, want)
		}
		if _, err := v.LoadTokens(ctx, "a"); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("old keyring still opens rotated rows: %v", err)
		}
	})
}

func TestRotateKeyEnv(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		db := b.open(t)
		dir := t.TempDir() // the key lives outside the database, on both backends
		oldKey, newKey := GenerateKey(), GenerateKey()
		keys, _ := LoadKeyring(dir, env(map[string]string{KeyEnv: oldKey}), nil)
		if err := db.EnsureChannels(ctx, []string{"a"}); err != nil {
			t.Fatal(err)
		}
		if err := db.Tx(ctx, func(tx *sql.Tx) error {
			return NewVault(db, keys).SaveTokens(ctx, tx, "a", Tokens{Access: "x", Refresh: "y"})
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := RotateKey(ctx, db, dir, env(map[string]string{KeyEnv: newKey}), nil); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("rotation without the old key: err = %v, want ErrUnknownKey", err)
		}
		res, err := RotateKey(ctx, db, dir, env(map[string]string{KeyEnv: newKey, OldKeyEnv: oldKey}), nil)
		if err != nil || res.Rows != 1 {
			t.Fatalf("rotate = %+v, %v; want 1 row", res, err)
		}
		only, _ := LoadKeyring(dir, env(map[string]string{KeyEnv: newKey}), nil)
		if got, err := NewVault(db, only).LoadTokens(ctx, "a"); err != nil || got.Refresh != "y" {
			t.Fatalf("load after rotation = %+v, %v", got, err)
		}
	})
}
