package datasets

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A read-write open creates the feedback log beside the db (4 MiB of
// zeros) and commits to the db, so a db on a read-only disk or in a
// folder the user cannot write (a backup) could not be opened, even to
// export it. A ReadOnly open reads it and writes nothing.
func TestReadOnlyOpen(t *testing.T) {
	// fill makes a db with one request and its feedback, closed cleanly
	// (the log applied and removed), and returns its path.
	fill := func(t *testing.T) string {
		t.Helper()
		path := filepath.Join(t.TempDir(), "feedback.db")
		s := openStoreAt(t, path, StoreOptions{NoSync: true})
		if err := s.AppendDecisions([]LogEntry{entry("r1", t0, "speculate", 0.5, `{"prompt":"p"}`)}); err != nil {
			t.Fatal(err)
		}
		put(t, s, Feedback{RequestID: "r1", Model: "fast-m", Outcome: Outcome{Score: Float(1)}})
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		return path
	}

	t.Run("a db in a folder nobody may write is read", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("running as root, where file permissions do not bite; the next case checks the open mode instead")
		}
		path := fill(t)
		dir := filepath.Dir(path)
		if err := os.Chmod(path, 0o444); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o555); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(dir, 0o755) })
		s, err := OpenBoltStore(path, StoreOptions{ReadOnly: true})
		if err != nil {
			t.Fatalf("read-only open of a db in a read-only folder: %v", err)
		}
		defer s.Close()
		if got := scores(t, s); got["r1/fast-m"] != 1 {
			t.Errorf("exported %v, want r1's feedback", got)
		}
	})

	t.Run("the file is opened read-only and nothing changes beside it", func(t *testing.T) {
		path := fill(t)
		dir := filepath.Dir(path)
		// Set in the past, so that a write in this test is seen however
		// coarse the filesystem's clock.
		past := t0.Add(-time.Hour)
		if err := os.Chtimes(path, past, past); err != nil {
			t.Fatal(err)
		}
		s, err := OpenBoltStore(path, StoreOptions{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		if mode, ok := openMode(t, path); ok && mode != syscall.O_RDONLY {
			t.Errorf("the db is open with access mode %#o, want O_RDONLY", mode)
		}
		if names := listDir(t, dir); !slices.Equal(names, []string{"feedback.db"}) {
			t.Errorf("the folder holds %v while the store is open, want the db alone (no feedback log)", names)
		}
		if got := scores(t, s); got["r1/fast-m"] != 1 {
			t.Errorf("exported %v, want r1's feedback", got)
		}
		err = s.PutFeedback(context.Background(), Feedback{RequestID: "r1", Model: "strong-m", Outcome: Outcome{Score: Float(0)}})
		if !errors.Is(err, ErrStoreReadOnly) {
			t.Errorf("a write: %v, want ErrStoreReadOnly", err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(path); err != nil || !fi.ModTime().Equal(past) {
			t.Errorf("the db was written (stat: %v)", err)
		}
		if names := listDir(t, dir); !slices.Equal(names, []string{"feedback.db"}) {
			t.Errorf("after close the folder holds %v, want the db alone", names)
		}
	})

	t.Run("a log with writes not yet applied is an UnappliedLogError", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "feedback.db")
		s := openStoreAt(t, path, StoreOptions{NoSync: true})
		if err := s.AppendDecisions([]LogEntry{entry("r1", t0, "speculate", 0.5, `{"prompt":"p"}`)}); err != nil {
			t.Fatal(err)
		}
		put(t, s, Feedback{RequestID: "r1", Model: "fast-m", Outcome: Outcome{Score: Float(1)}})
		crash(t, s)
		_, err := OpenBoltStore(path, StoreOptions{ReadOnly: true})
		var ue *UnappliedLogError
		if !errors.As(err, &ue) || ue.Writes != 1 || ue.Log != path+walSuffix {
			t.Fatalf("read-only open after a crash: %v, want an UnappliedLogError for 1 write in %s", err, path+walSuffix)
		}
		// A read-write open applies it, as before.
		s = openStoreAt(t, path, StoreOptions{NoSync: true})
		defer s.Close()
		if got := scores(t, s); got["r1/fast-m"] != 1 {
			t.Errorf("exported %v after the replay, want r1's feedback", got)
		}
	})

	t.Run("a db that does not exist is not created", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "none.db")
		if _, err := OpenBoltStore(path, StoreOptions{ReadOnly: true}); err == nil {
			t.Fatal("opened a db that does not exist")
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s was created (stat: %v)", path, err)
		}
	})
}

// openMode is the access mode (O_RDONLY, O_WRONLY, O_RDWR) of this
// process's open file descriptor on path, read from /proc/self/fdinfo;
// ok is false where /proc does not say (not Linux).
func openMode(tb testing.TB, path string) (mode int, ok bool) {
	tb.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0, false
	}
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err != nil || target != path {
			continue
		}
		info, err := os.ReadFile(filepath.Join("/proc/self/fdinfo", fd.Name()))
		if err != nil {
			return 0, false
		}
		for _, line := range strings.Split(string(info), "\n") {
			if v, found := strings.CutPrefix(line, "flags:"); found {
				flags, err := strconv.ParseInt(strings.TrimSpace(v), 8, 64)
				if err != nil {
					tb.Fatalf("fdinfo flags %q: %v", v, err)
				}
				return int(flags) & syscall.O_ACCMODE, true
			}
		}
	}
	tb.Fatalf("%s is not open in this process", path)
	return 0, false
}

// listDir names dir's entries.
func listDir(tb testing.TB, dir string) []string {
	tb.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
