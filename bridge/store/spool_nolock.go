//go:build !unix

package store

import "os"

// lockFile is a no-op without flock(2): there, only one process may open
// the state directory at a time.
func lockFile(*os.File, bool) error { return nil }
