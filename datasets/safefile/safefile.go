// Package safefile writes output files whole or not at all: data goes to a
// temporary file beside the target, is fsynced, and is renamed over the
// target only on Commit. A crash or an error leaves the old file (or none).
// A target that is a device or a pipe (/dev/null, /dev/stdout, a named
// pipe) is written in place instead: renaming over it would replace the
// device for every process on the machine.
package safefile

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// File is an output file in the making. It is an io.Writer.
type File struct {
	*os.File
	path string
	done bool
	// direct says the target is not a regular file (a device such as
	// /dev/null or /dev/stdout, a named pipe): it is written in place,
	// since renaming a file over it would replace the device itself.
	direct bool
	// mode is the replaced file's permissions, kept; 0 for a new file,
	// whose temporary file was created with the umask applied, as the
	// shell's > or cp would.
	mode os.FileMode
}

// Create starts writing path. Call Commit to publish it, or Abort.
//
// A regular file (or none yet) is written to a temporary file beside it
// and renamed into place on Commit; through a symbolic link, the file the
// link points to is replaced and the link kept. A target that exists and
// is not a regular file is written in place (there is no "whole or not at
// all" for a pipe), and a directory is an error.
func Create(path string) (*File, error) {
	target := path
	var mode os.FileMode
	if fi, err := os.Stat(path); err == nil {
		switch {
		case fi.IsDir():
			return nil, fmt.Errorf("create %s: it is a directory; name a file in it", path)
		case !fi.Mode().IsRegular():
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				return nil, pathError("create", path, err)
			}
			return &File{File: f, path: path, direct: true}, nil
		}
		if real, err := filepath.EvalSymlinks(path); err == nil {
			target = real
		}
		mode = fi.Mode().Perm()
	} else if errors.Is(err, fs.ErrNotExist) {
		if dest := danglingTarget(path); dest != "" {
			target = dest
		}
	}
	dir, prefix := filepath.Dir(target), "."+filepath.Base(target)+".tmp-"
	RemoveStaleFiles(dir, prefix)
	tmp, err := createTemp(dir, prefix)
	if err != nil {
		return nil, pathError("create", path, err)
	}
	return &File{File: tmp, path: target, mode: mode}, nil
}

// danglingTarget is the path a symbolic link at path names when it
// points to no file yet (current.json -> releases/v9.json, made before
// v9 is written), following a chain of links as the kernel does; "" when
// path is no such link. The file is created there, as the shell's > does,
// and the link kept: renaming over path replaced the link with a regular
// file, while a link to an existing file was kept.
func danglingTarget(path string) string {
	p := path
	for range 40 { // the kernel's limit on links followed
		fi, err := os.Lstat(p)
		if err != nil {
			if p == path {
				return ""
			}
			return p
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			return ""
		}
		dest, err := os.Readlink(p)
		if err != nil {
			return ""
		}
		if !filepath.IsAbs(dest) {
			dest = filepath.Join(filepath.Dir(p), dest)
		}
		p = dest
	}
	return ""
}

// staleAge is how old a temporary file must be before RemoveStaleFiles takes
// it: a writer locks its file just after creating it, and this keeps a
// file created an instant ago, not locked yet, out of reach.
const staleAge = time.Minute

// TryLock takes the lock a writer holds on its temporary file or folder
// (an exclusive flock, without waiting), which RemoveStaleDirs and
// Create's own cleanup test. It is released when f is closed or the
// process dies. Where flock does not exist it does nothing.
func TryLock(f *os.File) error { return lockTemp(f) }

// RemoveStaleDirs removes the folders in dir named prefix and digits
// (as os.MkdirTemp makes them from prefix+"*") that a killed writer left:
// over staleAge old and not locked (TryLock) by a live one. Errors are
// ignored.
func RemoveStaleDirs(dir, prefix string) { removeStale(dir, prefix, true) }

// RemoveStaleFiles removes the temporary files named prefix and digits
// that writers killed before they finished (kill -9, the OOM killer, a
// power cut) left in dir: as big as what they had written (a log import,
// a libsvm export, a salvaged db), and otherwise never removed, one more
// each time. Create calls it for its target's temporary files. A file is
// stale when its name is prefix and digits (as createTemp and
// os.CreateTemp make them), it is older than staleAge, and its writer's
// lock is free (TryLock; bbolt takes the same lock on a db it has open);
// a live writer's file is left alone. Errors are ignored: what cannot be
// removed stays, as before.
func RemoveStaleFiles(dir, prefix string) { removeStale(dir, prefix, false) }

// removeStale removes dir's stale folders (dirs) or regular files named
// prefix and digits.
func removeStale(dir, prefix string, dirs bool) {
	if !canTellStale {
		return
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || rest == "" || strings.Trim(rest, "0123456789") != "" {
			continue
		}
		if dirs && !e.IsDir() || !dirs && !e.Type().IsRegular() {
			continue
		}
		if fi, err := e.Info(); err != nil || time.Since(fi.ModTime()) < staleAge {
			continue
		}
		p := filepath.Join(dir, e.Name())
		// flock needs no write access: a read-only handle tests the lock
		// of a file as of a folder.
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		if lockTemp(f) == nil {
			os.RemoveAll(p) // under the lock: no writer holds it
		}
		f.Close()
	}
}

// createTemp creates a new file named prefix and a random suffix in dir,
// as os.CreateTemp does, but with permissions 0666 less the umask (as
// any new file gets) instead of CreateTemp's fixed 0600.
func createTemp(dir, prefix string) (*os.File, error) {
	for try := 0; ; try++ {
		name := filepath.Join(dir, prefix+strconv.FormatUint(uint64(rand.Uint32()), 10))
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
		if os.IsExist(err) && try < 100 {
			continue
		}
		if err == nil {
			// Held until the file is closed: RemoveStaleFiles leaves it be.
			// A filesystem without locks only loses that cleanup.
			lockTemp(f)
		}
		return f, err
	}
}

// Write writes to the file. Its error names the path being written, not
// the temporary file beside it, as every error of File does.
func (f *File) Write(p []byte) (int, error) {
	n, err := f.File.Write(p)
	if err != nil {
		err = pathError("write", f.path, err)
	}
	return n, err
}

// pathError is err as an *fs.PathError naming op and path once. The
// errors of os calls name the file they touched already: wrapped again
// with the path, a write to a device said "write /dev/full: write
// /dev/full: no space left on device", and one to a regular file named
// the temporary file (".router.json.tmp-123") beside the path the user
// gave as well.
func pathError(op, path string, err error) error {
	switch e := err.(type) {
	case *fs.PathError:
		err = e.Err
	case *os.LinkError:
		err = e.Err
	}
	return &fs.PathError{Op: op, Path: path, Err: err}
}

// Commit syncs the data and atomically renames it into place.
func (f *File) Commit() error {
	if f.done {
		return fmt.Errorf("commit %s: already closed", f.path)
	}
	f.done = true
	if f.direct {
		if err := f.File.Close(); err != nil {
			return pathError("close", f.path, err)
		}
		return nil
	}
	if err := f.File.Sync(); err != nil {
		f.cleanup()
		return pathError("sync", f.path, err)
	}
	if f.mode != 0 {
		if err := f.File.Chmod(f.mode); err != nil {
			f.cleanup()
			return pathError("chmod", f.path, err)
		}
	}
	if err := f.File.Close(); err != nil {
		os.Remove(f.File.Name())
		return pathError("close", f.path, err)
	}
	if err := os.Rename(f.File.Name(), f.path); err != nil {
		os.Remove(f.File.Name())
		return pathError("rename into", f.path, err)
	}
	// Sync the directory so the rename itself survives a crash. The new
	// file is in place already; an error says it may not stay there.
	if err := SyncDir(filepath.Dir(f.path)); err != nil {
		return fmt.Errorf("%s is written but may not survive a crash: %w", f.path, err)
	}
	return nil
}

// dirSync syncs an open directory; tests replace it to fail.
var dirSync = (*os.File).Sync

// SyncDir fsyncs a directory, so that a file created in it or renamed
// into it survives a crash. A filesystem or a directory that cannot be
// synced at all (EINVAL or ENOTSUP from fsync: some network and FUSE
// filesystems; EACCES opening a directory with no read permission) is not
// an error, since refusing every write there would make the files
// unwritable rather than safer; an I/O error is.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return nil
		}
		return pathError("sync directory", dir, err)
	}
	err = dirSync(d)
	cerr := d.Close()
	if err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOTSUP) {
		return pathError("sync directory", dir, err)
	}
	if cerr != nil {
		return pathError("sync directory", dir, cerr)
	}
	return nil
}

// Abort discards the temporary file. It is safe after Commit (a no-op).
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	f.cleanup()
}

func (f *File) cleanup() {
	f.File.Close()
	if !f.direct {
		os.Remove(f.File.Name())
	}
}

// WriteFile writes data to path atomically.
func WriteFile(path string, data []byte) error {
	f, err := Create(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Abort()
		return err
	}
	return f.Commit()
}

// KindOf names what a file that is not a regular file is, for an error a
// person reads: "a directory", "a device", "a named pipe", ...
func KindOf(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeDevice != 0:
		return "a device"
	case m&os.ModeNamedPipe != 0:
		return "a named pipe"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeSymlink != 0:
		return "a symbolic link"
	case m.IsRegular():
		return "a regular file"
	}
	return "a special file (" + m.Type().String() + ")"
}
