//go:build linux

package report

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

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
	if errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EXDEV) {
		// A mount point that mountPoint could not tell (a bind mount
		// of a folder of the parent's own filesystem).
		return mountPointError(b)
	}
	return err
}

// mountPoint reports whether dir is the root of a filesystem mounted on
// its parent's: its device is not its parent's. A bind mount of a folder
// of the same filesystem has the same device; exchange refuses that one.
func mountPoint(dir string) bool {
	var st, up unix.Stat_t
	if unix.Stat(dir, &st) != nil || unix.Stat(filepath.Dir(dir), &up) != nil {
		return false
	}
	return st.Dev != up.Dev
}

// keepOwner gives dir old's owner and group where this process may: root
// both, another user a group it is in. Errors are ignored: a user who may
// not give the folder away keeps it, as a report it writes always had.
func keepOwner(dir string, old fs.FileInfo) {
	st, ok := old.Sys().(*syscall.Stat_t)
	if !ok {
		return
	}
	if os.Lchown(dir, int(st.Uid), int(st.Gid)) != nil {
		os.Lchown(dir, -1, int(st.Gid))
	}
}
