package datasets

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/triage-router/triage/datasets/safefile"
)

// compactTxSize caps the bytes bbolt.Compact writes per transaction.
const compactTxSize = 64 << 20

// afterCompactRename, when set by a test, runs once an in-place
// compaction's new file has taken the db's name, before the store on the
// old file is closed.
var afterCompactRename func()

// CompactResult gives the file sizes around a compaction.
type CompactResult struct {
	Before, After int64
	// Removed are the files an earlier, killed compaction left.
	Removed []string
}

// CompactDB rewrites the store at path without its free pages, with
// bbolt's Compact, into out, or over path itself when out is "" or path.
// Retention frees pages for reuse but never shrinks the file; this does.
// The store is opened (and so checked, and its feedback log applied)
// first, and no server may hold it. The new file is written beside its
// destination, synced and renamed into place, so a crash leaves the old
// file or the new one. Cancelling ctx (an interrupt) leaves the old file
// and no new one; bbolt's Compact cannot be stopped half-way, so it is
// noticed when the copy ends, before the rename.
func CompactDB(ctx context.Context, path, out string, opts StoreOptions) (CompactResult, error) {
	var res CompactResult
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if out == "" {
		out = path
	}
	inPlace := filepath.Clean(out) == filepath.Clean(path)
	if isLogOf(out, path) {
		return res, fmt.Errorf("compact feedback db: -o %s is the feedback log of %s, which closing the store removes; give another file", out, path)
	}
	if inPlace {
		// Through a symbolic link, the new file replaces the file the
		// link points to, on its disk, and the link stays.
		real, err := filepath.EvalSymlinks(path)
		if err != nil {
			return res, fmt.Errorf("compact feedback db: %w", err)
		}
		out = real
	} else {
		if _, err := os.Stat(out); err == nil {
			return res, fmt.Errorf("compact feedback db: %s exists; give a new file with -o, or none to compact in place", out)
		}
	}
	if _, err := os.Stat(path); err != nil {
		return res, fmt.Errorf("compact feedback db: %w", err)
	}
	s, err := OpenBoltStore(path, opts)
	if err != nil {
		return res, err
	}
	defer s.Close()
	if inPlace {
		// A compaction killed before its rename left its new file beside
		// the db (as big as the db). This one holds the db's lock, so no
		// other compaction of it is writing one now.
		for _, p := range staleCompactions(out) {
			if err := os.Remove(p); err == nil {
				res.Removed = append(res.Removed, p)
			}
		}
	}
	if err := s.flush(); err != nil {
		return res, fmt.Errorf("compact feedback db: %w", err)
	}
	if inPlace {
		// The log is applied; remove it now, under the old file's lock.
		// Once the new file takes the db's name a server may open it and
		// its log, at the same path, which s's Close would remove.
		if err := s.dropLog(); err != nil {
			return res, fmt.Errorf("compact feedback db: %w", err)
		}
	}
	if fi, err := os.Stat(path); err == nil {
		res.Before = fi.Size()
	}
	err = writeNewDB(ctx, out, s.db.Info().PageSize, func(dst *bolt.DB) error {
		return bolt.Compact(dst, s.db, compactTxSize)
	})
	if err != nil {
		return res, fmt.Errorf("compact feedback db %s: %w", path, err)
	}
	if afterCompactRename != nil {
		afterCompactRename()
	}
	if fi, err := os.Stat(out); err == nil {
		res.After = fi.Size()
	}
	return res, s.Close()
}

// writeNewDB writes a bbolt file at dst with fill: into a temporary file
// beside it, synced and renamed into place when fill succeeds, so a crash,
// an error or a cancelled ctx leaves no partial file at dst.
func writeNewDB(ctx context.Context, dst string, pageSize int, fill func(*bolt.DB) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	// The new files of killed salvages and compactions into dst (each as
	// big as what it had copied): bbolt holds a live one's flock.
	safefile.RemoveStaleFiles(filepath.Dir(dst), "."+filepath.Base(dst)+".new-")
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".new-*")
	if err != nil {
		// The error names the temporary file, a name the user never
		// gave: what failed is making a file in dst's folder.
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("a new file cannot be made in %s: %w", filepath.Dir(dst), err)
	}
	name := tmp.Name()
	tmp.Close()
	done := false
	defer func() {
		if !done {
			os.Remove(name)
		}
	}()
	db, err := bolt.Open(name, 0o600, &bolt.Options{Timeout: time.Second, PageSize: pageSize, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return err
	}
	err = fill(db)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		// An interrupt during the copy: nothing is published.
		err = ctx.Err()
	}
	if err != nil {
		return err
	}
	if err := syncFile(name); err != nil {
		return err
	}
	if err := os.Rename(name, dst); err != nil {
		return err
	}
	done = true
	return safefile.SyncDir(filepath.Dir(dst))
}

// staleCompactions lists the new files that killed compactions of the
// db at path left beside it: the names writeNewDB's CreateTemp pattern
// makes, "." + the db's name + ".new-" + digits. It matches names by
// prefix, not with filepath.Glob, so a db named with '[', '*' or '?'
// (glob syntax) finds its own files, and the digits keep the files of
// another db whose name begins with this one's (db.new-5's own
// ".db.new-5.new-123") out of it.
func staleCompactions(path string) []string {
	dir, prefix := filepath.Dir(path), "."+filepath.Base(path)+".new-"
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var stale []string
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || rest == "" || !e.Type().IsRegular() {
			continue
		}
		if strings.Trim(rest, "0123456789") == "" {
			stale = append(stale, filepath.Join(dir, e.Name()))
		}
	}
	return stale
}

func syncFile(name string) error {
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Sync()
	return errors.Join(err, f.Close())
}

// isLogOf reports whether file is the feedback log of the db at path.
func isLogOf(file, path string) bool {
	return filepath.Clean(file) == filepath.Clean(path)+walSuffix
}
