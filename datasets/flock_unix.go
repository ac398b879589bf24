//go:build unix

package datasets

import (
	"errors"
	"os"
	"syscall"
	"time"
)

// sharedLock takes a shared flock on f, as bbolt's read-only open does,
// waiting up to timeout: a server holding the file read-write has an
// exclusive one, so a check never reads a file being written.
func sharedLock(f *os.File, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return err
		}
		if time.Now().After(deadline) {
			return errLockTimeout
		}
		time.Sleep(20 * time.Millisecond)
	}
}
