package datasets

import (
	"os"
	"syscall"
)

// fdatasync flushes f's data and the metadata needed to read it back, not
// its timestamps: the feedback log is preallocated, so that is its data.
func fdatasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
}
