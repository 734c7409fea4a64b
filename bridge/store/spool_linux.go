package store

import (
	"os"
	"syscall"
)

// datasync flushes f's data (and the size needed to read it back), not
// its other metadata: fdatasync(2).
func datasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
}
