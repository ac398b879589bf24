//go:build linux

package report

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// exchange swaps the folders a and b in one step (renameat2 with
// RENAME_EXCHANGE): a reader sees one or the other at each path, never
// neither, and a crash leaves either both swapped or neither.
func exchange(a, b string) error {
	err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP) {
		// Some filesystems (NFS, some FUSE ones) cannot swap two entries.
		return fmt.Errorf("%w (this filesystem cannot swap two folders in one step: %v)", errNoExchange, err)
	}
	return err
}
