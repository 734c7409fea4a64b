package store

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
)

// Reseal re-encrypts, in one transaction, every sealed value (tokens and
// pending authorizations' verifiers) that is not under the keyring's current
// key. It returns how many rows it rewrote. A value sealed with a key the
// keyring does not hold fails the whole transaction: nothing changes.
func (v *Vault) Reseal(ctx context.Context) (int, error) {
	cur := v.keys.KeyID()
	n := 0
	err := v.db.Tx(ctx, func(tx *sql.Tx) error {
		nt, err := v.resealTokens(ctx, tx, cur)
		if err != nil {
			return err
		}
		na, err := v.resealAuthRequests(ctx, tx, cur)
		if err != nil {
			return err
		}
		n = nt + na
		// Used requests hold nothing anyone will read again.
		if _, err := tx.ExecContext(ctx, `UPDATE auth_requests SET verifier = ?, key_id = '' WHERE used_at != '' AND key_id != ''`, []byte{}); err != nil {
			return fmt.Errorf("clear used auth requests: %w", err)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("reseal: %w", err)
	}
	return n, nil
}

// resealTokens rewrites the channels' tokens not under key cur; it returns
// how many channels it rewrote.
func (v *Vault) resealTokens(ctx context.Context, tx *sql.Tx, cur string) (int, error) {
	type tokRow struct {
		channel string
		rt, at  []byte
	}
	var toks []tokRow
	rows, err := tx.QueryContext(ctx, `SELECT channel, refresh_token, access_token FROM tokens`)
	if err != nil {
		return 0, fmt.Errorf("read tokens: %w", err)
	}
	for rows.Next() {
		var r tokRow
		if err := rows.Scan(&r.channel, &r.rt, &r.at); err != nil {
			rows.Close()
			return 0, fmt.Errorf("read tokens: %w", err)
		}
		toks = append(toks, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("read tokens: %w", err)
	}
	n := 0
	for _, r := range toks {
		rt, changedR, err := v.reseal(r.rt, tokenAAD("refresh_token", r.channel), cur)
		if err != nil {
			return 0, fmt.Errorf("channel %s refresh token: %w", r.channel, err)
		}
		at, changedA, err := v.reseal(r.at, tokenAAD("access_token", r.channel), cur)
		if err != nil {
			return 0, fmt.Errorf("channel %s access token: %w", r.channel, err)
		}
		if !changedR && !changedA {
			continue
		}
		if _, err := tx.ExecContext(ctx, `UPDATE tokens SET refresh_token = ?, access_token = ?, key_id = ? WHERE channel = ?`,
			rt, at, cur, r.channel); err != nil {
			return 0, fmt.Errorf("rewrite tokens of %s: %w", r.channel, err)
		}
		n++
	}
	return n, nil
}

// resealAuthRequests rewrites pending authorizations' verifiers not under
// key cur, dropping those it cannot read; it returns how many it rewrote.
func (v *Vault) resealAuthRequests(ctx context.Context, tx *sql.Tx, cur string) (int, error) {
	type reqRow struct {
		hash     string
		verifier []byte
	}
	var reqs []reqRow
	rows, err := tx.QueryContext(ctx, `SELECT state_hash, verifier FROM auth_requests WHERE used_at = ''`)
	if err != nil {
		return 0, fmt.Errorf("read auth requests: %w", err)
	}
	for rows.Next() {
		var r reqRow
		if err := rows.Scan(&r.hash, &r.verifier); err != nil {
			rows.Close()
			return 0, fmt.Errorf("read auth requests: %w", err)
		}
		reqs = append(reqs, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("read auth requests: %w", err)
	}
	n := 0
	for _, r := range reqs {
		sealed, changed, err := v.reseal(r.verifier, verifierAAD(r.hash), cur)
		if err != nil {
			// A pending authorization is cheap to redo: drop it rather
			// than fail the rotation.
			if _, err := tx.ExecContext(ctx, `DELETE FROM auth_requests WHERE state_hash = ?`, r.hash); err != nil {
				return 0, fmt.Errorf("drop unreadable auth request: %w", err)
			}
			continue
		}
		if !changed {
			continue
		}
		if _, err := tx.ExecContext(ctx, `UPDATE auth_requests SET verifier = ?, key_id = ? WHERE state_hash = ?`,
			sealed, cur, r.hash); err != nil {
			return 0, fmt.Errorf("rewrite auth request: %w", err)
		}
		n++
	}
	return n, nil
}

func (v *Vault) reseal(sealed []byte, aad, cur string) ([]byte, bool, error) {
	id, err := SealedKeyID(sealed)
	if err != nil {
		return nil, false, err
	}
	if id == cur {
		return sealed, false, nil
	}
	pt, err := v.keys.Open(sealed, aad)
	if err != nil {
		return nil, false, err
	}
	return v.keys.Seal(pt, aad), true, nil
}

// RotationResult reports a key rotation.
type RotationResult struct {
	OldKeyID, NewKeyID string
	Rows               int    // rows re-encrypted
	Source             string // where the current key now lives
}

// RotateKey moves every sealed value to a new key.
//
// With a key file (the default): the current key is copied to
// m365bridge.key.old, a new key replaces m365bridge.key (both written
// atomically, mode 0600), every row is re-encrypted in one transaction, and
// only then is m365bridge.key.old removed. A crash at any point leaves a
// state that LoadKeyring reads and that running RotateKey again finishes.
//
// With M365BRIDGE_KEY set, the operator supplies the new key there and the
// previous one in M365BRIDGE_KEY_OLD; RotateKey re-encrypts every row to
// M365BRIDGE_KEY.
//
// The daemon must not run during a rotation: it holds the old key in memory.
func RotateKey(ctx context.Context, db *DB, stateDir string, getenv func(string) string, log *slog.Logger) (RotationResult, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	keys, err := LoadKeyring(stateDir, getenv, log)
	if err != nil {
		return RotationResult{}, err
	}
	if getenv(KeyEnv) != "" {
		n, err := NewVault(db, keys).Reseal(ctx)
		if err != nil {
			return RotationResult{}, fmt.Errorf("rotate key (%s set: put the previous key in %s): %w", KeyEnv, OldKeyEnv, err)
		}
		return RotationResult{NewKeyID: keys.KeyID(), Rows: n, Source: keys.Source}, nil
	}

	path := filepath.Join(stateDir, KeyFileName)
	oldPath := filepath.Join(stateDir, OldKeyFileName)
	// Finish an interrupted rotation first: everything to the current key.
	if _, err := os.Stat(oldPath); err == nil {
		if _, err := NewVault(db, keys).Reseal(ctx); err != nil {
			return RotationResult{}, fmt.Errorf("finish the previous rotation: %w", err)
		}
		if err := os.Remove(oldPath); err != nil {
			return RotationResult{}, fmt.Errorf("remove %s: %w", oldPath, err)
		}
	}
	curText, err := os.ReadFile(path)
	if err != nil {
		return RotationResult{}, fmt.Errorf("read key file: %w", err)
	}
	res := RotationResult{OldKeyID: keys.KeyID()}
	if err := writeKeyFile(oldPath, string(trimNL(curText)), true); err != nil {
		return RotationResult{}, err
	}
	if err := writeKeyFile(path, GenerateKey(), true); err != nil {
		return RotationResult{}, err
	}
	keys, err = LoadKeyring(stateDir, getenv, log)
	if err != nil {
		return RotationResult{}, err
	}
	res.NewKeyID, res.Source = keys.KeyID(), keys.Source
	if res.Rows, err = NewVault(db, keys).Reseal(ctx); err != nil {
		return RotationResult{}, fmt.Errorf("re-encrypt (the old key stays in %s; run keys rotate again): %w", oldPath, err)
	}
	if err := os.Remove(oldPath); err != nil {
		return RotationResult{}, fmt.Errorf("remove %s: %w", oldPath, err)
	}
	log.Warn("rotated the token-encryption key: back up the new key file", "path", path, "key_id", res.NewKeyID)
	return res, nil
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}
