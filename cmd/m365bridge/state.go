package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/m365bridge/m365bridge/bridge/store"
)

// errNoState: the state directory has no database. Commands that only read
// state return it instead of creating one (with a new key) as a side
// effect.
var errNoState = errors.New("no state")

// openExistingStore opens the database in dir for a command that reads
// state. It never creates the directory, the database or a key: when they
// are missing the error says where it looked and what to pass instead.
func openExistingStore(ctx context.Context, dir, from string) (*store.DB, error) {
	if err := stateExists(dir, from); err != nil {
		return nil, err
	}
	db, err := store.Open(ctx, filepath.Join(dir, store.FileName))
	if err != nil {
		return nil, fmt.Errorf("open state in %s: %w", dir, err)
	}
	return db, nil
}

// stateExists reports errNoState, with a fix, unless dir holds a database.
// from says where dir came from (a flag or a config file's state_dir).
func stateExists(dir, from string) error {
	_, err := os.Stat(filepath.Join(dir, store.FileName))
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrNotExist):
		abs, _ := filepath.Abs(dir)
		return fmt.Errorf("%w in %s (%s): no %s there, so no daemon has run with this state directory. "+
			"Point at the daemon's: --config with the file `m365bridge serve` uses (a running daemon is then asked through admin.listen), "+
			"or --state-dir with its state_dir", errNoState, abs, from, store.FileName)
	default:
		return fmt.Errorf("state in %s: %w", dir, err)
	}
}
