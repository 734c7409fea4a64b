package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Tokens are one channel's OAuth tokens. They are sealed before they touch
// the database; fmt and slog print them redacted, with the expiry only.
type Tokens struct {
	Access  string
	Refresh string
	// Expiry is when Access stops being accepted.
	Expiry time.Time
}

// String redacts the tokens.
func (t Tokens) String() string {
	return "Tokens{[redacted], expiry " + t.Expiry.UTC().Format(time.RFC3339) + "}"
}

// GoString redacts for %#v too.
func (t Tokens) GoString() string { return t.String() }

// LogValue redacts in log/slog.
func (t Tokens) LogValue() slog.Value { return slog.StringValue(t.String()) }

// ErrNoTokens means the channel has never been connected (or was reset).
var ErrNoTokens = errors.New("no tokens stored for channel")

// Errors of TakeAuthRequest, one per reason a callback's state is refused.
var (
	ErrAuthUnknown = errors.New("unknown authorization state")
	ErrAuthReused  = errors.New("authorization state already used")
	ErrAuthExpired = errors.New("authorization state expired")
)

// Auth request kinds.
const (
	AuthConnect = "connect"
	AuthReauth  = "reauth"
)

// AuthRequest is a pending authorization: the OAuth state handed to the
// browser, bound to a channel and a kind, with its PKCE verifier.
type AuthRequest struct {
	State    string // the raw state; only its SHA-256 is stored
	Channel  string
	Kind     string // AuthConnect | AuthReauth
	Verifier string
	Created  time.Time
	Expires  time.Time
}

// Vault is the encrypted side of the store: tokens and pending
// authorizations, sealed with a Keyring.
type Vault struct {
	db   *DB
	keys *Keyring
}

// NewVault returns the vault of db sealed with keys.
func NewVault(db *DB, keys *Keyring) *Vault { return &Vault{db: db, keys: keys} }

// DB is the vault's database.
func (v *Vault) DB() *DB { return v.db }

// Keys is the vault's keyring.
func (v *Vault) Keys() *Keyring { return v.keys }

func tokenAAD(column, channel string) string { return "tokens." + column + "/" + channel }

// SaveTokens stores a channel's tokens, sealed, inside tx, replacing what was
// there. The channel row must exist (EnsureChannels). Callers commit the
// rotated refresh token in the same transaction as the access token that
// came with it, before using that access token.
func (v *Vault) SaveTokens(ctx context.Context, tx *sql.Tx, channel string, t Tokens) error {
	if t.Refresh == "" || t.Access == "" {
		return fmt.Errorf("save tokens for %s: access and refresh token are both required", channel)
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO tokens (channel, key_id, refresh_token, access_token, expiry, updated_at)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (channel) DO UPDATE SET key_id = excluded.key_id, refresh_token = excluded.refresh_token,
			access_token = excluded.access_token, expiry = excluded.expiry, updated_at = excluded.updated_at`,
		channel, v.keys.KeyID(),
		v.keys.Seal([]byte(t.Refresh), tokenAAD("refresh_token", channel)),
		v.keys.Seal([]byte(t.Access), tokenAAD("access_token", channel)),
		timeText(t.Expiry), timeText(v.db.Now()))
	if err != nil {
		return fmt.Errorf("save tokens for %s: %w", channel, err)
	}
	return nil
}

// LoadTokens reads and opens a channel's tokens; ErrNoTokens when there are
// none. It reads through the writer so that it sees every commit.
func (v *Vault) LoadTokens(ctx context.Context, channel string) (Tokens, error) {
	var rt, at []byte
	var exp string
	err := v.db.write.QueryRowContext(ctx, `SELECT refresh_token, access_token, expiry FROM tokens WHERE channel = ?`, channel).
		Scan(&rt, &at, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		return Tokens{}, fmt.Errorf("load tokens for %s: %w", channel, ErrNoTokens)
	}
	if err != nil {
		return Tokens{}, fmt.Errorf("load tokens for %s: %w", channel, err)
	}
	r, err := v.keys.Open(rt, tokenAAD("refresh_token", channel))
	if err != nil {
		return Tokens{}, fmt.Errorf("load tokens for %s: %w", channel, err)
	}
	a, err := v.keys.Open(at, tokenAAD("access_token", channel))
	if err != nil {
		return Tokens{}, fmt.Errorf("load tokens for %s: %w", channel, err)
	}
	t := Tokens{Refresh: string(r), Access: string(a)}
	if t.Expiry, err = parseTime(exp); err != nil {
		return Tokens{}, fmt.Errorf("load tokens for %s: bad expiry: %w", channel, err)
	}
	return t, nil
}

// DeleteTokens removes a channel's tokens inside tx.
func (v *Vault) DeleteTokens(ctx context.Context, tx *sql.Tx, channel string) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM tokens WHERE channel = ?`, channel); err != nil {
		return fmt.Errorf("delete tokens for %s: %w", channel, err)
	}
	return nil
}

func stateHash(state string) string {
	sum := sha256.Sum256([]byte(state))
	return hex.EncodeToString(sum[:])
}

func verifierAAD(hash string) string { return "auth_requests.verifier/" + hash }

// CreateAuthRequest stores a pending authorization. The channel row is
// created (needs_consent) when missing. Expired requests are swept.
func (v *Vault) CreateAuthRequest(ctx context.Context, r AuthRequest) error {
	if r.State == "" || r.Channel == "" || r.Verifier == "" {
		return errors.New("create auth request: state, channel and verifier are required")
	}
	if r.Kind != AuthConnect && r.Kind != AuthReauth {
		return fmt.Errorf("create auth request: kind %q, want connect or reauth", r.Kind)
	}
	h := stateHash(r.State)
	return v.db.Tx(ctx, func(tx *sql.Tx) error {
		if err := ensureChannel(ctx, tx, r.Channel, v.db.Now()); err != nil {
			return err
		}
		// Keep used and expired rows for a day so a late click still gets
		// "expired" or "already used" rather than "unknown".
		if _, err := tx.ExecContext(ctx, `DELETE FROM auth_requests WHERE expires_at < ?`,
			timeText(v.db.Now().Add(-24*time.Hour))); err != nil {
			return fmt.Errorf("sweep auth requests: %w", err)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO auth_requests (state_hash, channel, kind, key_id, verifier, created_at, expires_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`,
			h, r.Channel, r.Kind, v.keys.KeyID(), v.keys.Seal([]byte(r.Verifier), verifierAAD(h)),
			timeText(r.Created), timeText(r.Expires))
		if err != nil {
			return fmt.Errorf("create auth request: %w", err)
		}
		return nil
	})
}

// TakeAuthRequest consumes the pending authorization for state: it is
// marked used in the same transaction that reads it, so a state works at
// most once. It fails with ErrAuthUnknown, ErrAuthReused or ErrAuthExpired.
func (v *Vault) TakeAuthRequest(ctx context.Context, state string, now time.Time) (AuthRequest, error) {
	h := stateHash(state)
	var r AuthRequest
	err := v.db.Tx(ctx, func(tx *sql.Tx) error {
		var sealed []byte
		var created, expires, used string
		err := tx.QueryRowContext(ctx, `SELECT channel, kind, verifier, created_at, expires_at, used_at
			FROM auth_requests WHERE state_hash = ?`, h).Scan(&r.Channel, &r.Kind, &sealed, &created, &expires, &used)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrAuthUnknown
		}
		if err != nil {
			return fmt.Errorf("read auth request: %w", err)
		}
		if used != "" {
			return ErrAuthReused
		}
		if r.Created, err = parseTime(created); err != nil {
			return fmt.Errorf("read auth request: %w", err)
		}
		if r.Expires, err = parseTime(expires); err != nil {
			return fmt.Errorf("read auth request: %w", err)
		}
		if !now.Before(r.Expires) {
			return ErrAuthExpired // stays unusable: nothing to mark
		}
		if _, err := tx.ExecContext(ctx, `UPDATE auth_requests SET used_at = ? WHERE state_hash = ?`, timeText(now), h); err != nil {
			return fmt.Errorf("mark auth request used: %w", err)
		}
		pt, err := v.keys.Open(sealed, verifierAAD(h))
		if err != nil {
			return fmt.Errorf("read auth request: %w", err)
		}
		r.State, r.Verifier = state, string(pt)
		return nil
	})
	if err != nil {
		return AuthRequest{}, err
	}
	return r, nil
}
