package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// LinkKeyFileName is the key that signs attachment links, in the state
// directory next to the token key. It is its own key, not the token key,
// so rotating the token key does not break links already sent, and a
// leaked link key exposes no token.
const LinkKeyFileName = "attachment-link.key"

// LoadLinkKey returns the 32-byte key that signs attachment links:
// stateDir/attachment-link.key, created (mode 0600) with a new random key
// on first start. It lives only in that file, never in the database, and
// survives restarts, so links in events already delivered keep working.
// Deleting the file invalidates every link handed out so far.
func LoadLinkKey(stateDir string) ([]byte, error) {
	path := filepath.Join(stateDir, LinkKeyFileName)
	key, err := readKeyFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(stateDir, 0o700); err != nil {
			return nil, fmt.Errorf("create state directory: %w", err)
		}
		if err := writeKeyFile(path, GenerateKey(), false); err != nil {
			return nil, err
		}
		key, err = readKeyFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("attachment link key: %w", err)
	}
	return key, nil
}
