// Package safefile writes output files whole or not at all: data goes to a
// temporary file beside the target, is fsynced, and is renamed over the
// target only on Commit. A crash or an error leaves the old file (or none).
package safefile

import (
	"fmt"
	"os"
	"path/filepath"
)

// File is an output file in the making. It is an io.Writer.
type File struct {
	*os.File
	path string
	done bool
}

// Create starts writing path. Call Commit to publish it, or Abort.
func Create(path string) (*File, error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	return &File{File: tmp, path: path}, nil
}

// Commit syncs the data and atomically renames it into place.
func (f *File) Commit() error {
	if f.done {
		return fmt.Errorf("commit %s: already closed", f.path)
	}
	f.done = true
	if err := f.File.Sync(); err != nil {
		f.cleanup()
		return fmt.Errorf("sync %s: %w", f.path, err)
	}
	if err := f.File.Chmod(0o644); err != nil {
		f.cleanup()
		return fmt.Errorf("chmod %s: %w", f.path, err)
	}
	if err := f.File.Close(); err != nil {
		os.Remove(f.File.Name())
		return fmt.Errorf("close %s: %w", f.path, err)
	}
	if err := os.Rename(f.File.Name(), f.path); err != nil {
		os.Remove(f.File.Name())
		return fmt.Errorf("rename into %s: %w", f.path, err)
	}
	// Sync the directory so the rename itself survives a crash.
	if d, err := os.Open(filepath.Dir(f.path)); err == nil {
		d.Sync()
		d.Close()
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
	os.Remove(f.File.Name())
}

// WriteFile writes data to path atomically.
func WriteFile(path string, data []byte) error {
	f, err := Create(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Abort()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Commit()
}
