//go:build !linux

package report

import (
	"fmt"
	"io/fs"
)

// exchange would swap a and b in one step; only Linux's renameat2 does,
// so elsewhere an existing report folder is not replaced (a new one is:
// that is one rename).
func exchange(a, b string) error {
	return fmt.Errorf("%w (only Linux can swap two folders in one step)", errNoExchange)
}

// mountPoint would tell a mount point; where no folder is swapped it does
// not matter.
func mountPoint(dir string) bool { return false }

// keepOwner would give dir old's owner; where no folder is swapped the
// old folder is never replaced.
func keepOwner(dir string, old fs.FileInfo) {}
