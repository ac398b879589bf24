//go:build unix

package safefile

import (
	"os"
	"syscall"
)

// lockTemp takes an exclusive flock on a temporary file without waiting.
// The writer holds it while the file is open, and the kernel drops it
// when the process dies, however it dies: a temporary file whose lock is
// free was left by a writer that is gone.
func lockTemp(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
}

// canTellStale says whether lockTemp tells a live writer's temporary
// file from a dead one's here.
const canTellStale = true
