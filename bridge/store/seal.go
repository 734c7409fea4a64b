package store

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// Key sources and file names. The key file holds the base64 encoding of 32
// random bytes, the same text M365BRIDGE_KEY takes.
const (
	KeyEnv         = "M365BRIDGE_KEY"     // the current key, base64; wins over the key file
	OldKeyEnv      = "M365BRIDGE_KEY_OLD" // a previous key, still accepted for reading
	KeyFileName    = "m365bridge.key"
	OldKeyFileName = "m365bridge.key.old"
)

// keyIDLen is the number of bytes of key id at the start of every ciphertext.
const keyIDLen = 8

// ErrUnknownKey means a ciphertext was sealed with a key the keyring does not
// hold: the key file was replaced or lost, or M365BRIDGE_KEY changed.
var ErrUnknownKey = errors.New("sealed with an unknown key")

// Keyring seals and opens secrets at rest with AES-256-GCM. Every ciphertext
// starts with the id of the key that sealed it, so rows sealed before a
// rotation stay readable while the old key is still held. Sealing always uses
// the current key. A Keyring is safe for concurrent use.
type Keyring struct {
	current *sealKey
	old     []*sealKey
	// Source says where the current key came from ("env M365BRIDGE_KEY" or
	// the key file path), for messages; never the key.
	Source string
}

type sealKey struct {
	id   [keyIDLen]byte
	aead cipher.AEAD
}

// NewKeyring builds a keyring from raw 32-byte keys: current seals, old ones
// only open.
func NewKeyring(current []byte, old ...[]byte) (*Keyring, error) {
	cur, err := newSealKey(current)
	if err != nil {
		return nil, err
	}
	k := &Keyring{current: cur, Source: "memory"}
	for _, o := range old {
		ok, err := newSealKey(o)
		if err != nil {
			return nil, fmt.Errorf("old key: %w", err)
		}
		if ok.id != cur.id {
			k.old = append(k.old, ok)
		}
	}
	return k, nil
}

func newSealKey(raw []byte) (*sealKey, error) {
	if len(raw) != 32 {
		return nil, fmt.Errorf("key is %d bytes, want 32 (base64 of 32 random bytes, e.g. from `m365bridge keys generate`)", len(raw))
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, fmt.Errorf("create cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("create cipher: %w", err)
	}
	k := &sealKey{aead: aead}
	sum := sha256.Sum256(append([]byte("m365bridge key id\x00"), raw...))
	copy(k.id[:], sum[:keyIDLen])
	return k, nil
}

// KeyID is the current key's id (hex), safe to print.
func (k *Keyring) KeyID() string { return hex.EncodeToString(k.current.id[:]) }

// Seal encrypts plaintext with the current key. aad binds the ciphertext to
// where it is stored (table, column, row), so it cannot be moved to another
// row and still open.
func (k *Keyring) Seal(plaintext []byte, aad string) []byte {
	nonce := make([]byte, k.current.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic("crypto/rand failed: " + err.Error()) // never happens on supported platforms
	}
	out := make([]byte, 0, keyIDLen+len(nonce)+len(plaintext)+k.current.aead.Overhead())
	out = append(out, k.current.id[:]...)
	out = append(out, nonce...)
	return k.current.aead.Seal(out, nonce, plaintext, []byte(aad))
}

// Open decrypts what Seal produced with any key the keyring holds. It fails
// with ErrUnknownKey when the key is not held, and with a plain error when the
// data was tampered with or aad differs.
func (k *Keyring) Open(sealed []byte, aad string) ([]byte, error) {
	id, err := SealedKeyID(sealed)
	if err != nil {
		return nil, err
	}
	key := k.find(id)
	if key == nil {
		return nil, fmt.Errorf("open secret: key id %s: %w (restore the key file from backup or set %s)", id, ErrUnknownKey, OldKeyEnv)
	}
	ns := key.aead.NonceSize()
	body := sealed[keyIDLen:]
	if len(body) < ns+key.aead.Overhead() {
		return nil, errors.New("open secret: ciphertext too short")
	}
	pt, err := key.aead.Open(nil, body[:ns], body[ns:], []byte(aad))
	if err != nil {
		return nil, fmt.Errorf("open secret: authentication failed (data corrupted or moved): %w", err)
	}
	return pt, nil
}

// SealedKeyID is the id (hex) of the key that sealed a ciphertext.
func SealedKeyID(sealed []byte) (string, error) {
	if len(sealed) < keyIDLen {
		return "", errors.New("open secret: ciphertext too short")
	}
	return hex.EncodeToString(sealed[:keyIDLen]), nil
}

func (k *Keyring) find(idHex string) *sealKey {
	for _, c := range append([]*sealKey{k.current}, k.old...) {
		if hex.EncodeToString(c.id[:]) == idHex {
			return c
		}
	}
	return nil
}

// ParseKey decodes a key given as base64 (standard or URL alphabet, padded or
// not) of exactly 32 bytes.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != 32 {
				return nil, fmt.Errorf("key decodes to %d bytes, want 32", len(b))
			}
			return b, nil
		}
	}
	return nil, errors.New("key is not base64: want the base64 encoding of 32 random bytes")
}

// GenerateKey returns a new random key, base64 encoded.
func GenerateKey() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return base64.StdEncoding.EncodeToString(b)
}

// LoadKeyring finds the token-encryption key: M365BRIDGE_KEY when set,
// otherwise stateDir/m365bridge.key, which is created (mode 0600) with a new
// random key on first start; that logs a warning to back it up, since
// without it the stored tokens cannot be read. A previous key
// (M365BRIDGE_KEY_OLD, or m365bridge.key.old left by an unfinished rotation)
// is loaded for reading. getenv is os.Getenv outside tests.
func LoadKeyring(stateDir string, getenv func(string) string, log *slog.Logger) (*Keyring, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var old [][]byte
	if v := getenv(OldKeyEnv); v != "" {
		b, err := ParseKey(v)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", OldKeyEnv, err)
		}
		old = append(old, b)
	}
	oldPath := filepath.Join(stateDir, OldKeyFileName)
	if b, err := readKeyFile(oldPath); err == nil {
		old = append(old, b)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}

	if v := getenv(KeyEnv); v != "" {
		cur, err := ParseKey(v)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", KeyEnv, err)
		}
		k, err := NewKeyring(cur, old...)
		if err != nil {
			return nil, err
		}
		k.Source = "env " + KeyEnv
		return k, nil
	}

	path := filepath.Join(stateDir, KeyFileName)
	cur, err := readKeyFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(stateDir, 0o700); err != nil {
			return nil, fmt.Errorf("create state directory: %w", err)
		}
		if err := writeKeyFile(path, GenerateKey(), false); err != nil {
			return nil, err
		}
		log.Warn("created a new token-encryption key: back it up, without it stored tokens cannot be read and every channel must be re-authenticated",
			"path", path)
		cur, err = readKeyFile(path)
	}
	if err != nil {
		return nil, err
	}
	k, err := NewKeyring(cur, old...)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	k.Source = path
	return k, nil
}

func readKeyFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("read key file: %w", err)
	}
	if st, err := os.Stat(path); err == nil && st.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(path, 0o600); err != nil {
			return nil, fmt.Errorf("restrict key file %s: %w", path, err)
		}
	}
	key, err := ParseKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return key, nil
}

// writeKeyFile writes a key file atomically (temp file, fsync, rename), mode
// 0600. With replace false an existing file is an error.
func writeKeyFile(path, key string, replace bool) error {
	if !replace {
		if _, err := os.Stat(path); err == nil {
			return fmt.Errorf("write key file: %s already exists", path)
		}
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write key file: %w", err)
	}
	_, werr := f.WriteString(key + "\n")
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write key file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write key file: %w", err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
