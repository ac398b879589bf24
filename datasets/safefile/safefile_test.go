package safefile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	t.Run("a new file appears whole, with no temporary file left", func(t *testing.T) {
		p := filepath.Join(dir, "new.json")
		if err := WriteFile(p, []byte("one")); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(p); string(b) != "one" {
			t.Errorf("content %q", b)
		}
		if m, _ := filepath.Glob(filepath.Join(dir, ".new.json.tmp-*")); len(m) > 0 {
			t.Errorf("temporary files left: %v", m)
		}
	})
	t.Run("an abort leaves the old file", func(t *testing.T) {
		p := filepath.Join(dir, "kept.json")
		os.WriteFile(p, []byte("old"), 0o644)
		f, err := Create(p)
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte("half"))
		f.Abort()
		if b, _ := os.ReadFile(p); string(b) != "old" {
			t.Errorf("content %q, want the old file", b)
		}
	})
	t.Run("through a symbolic link the file it points to is replaced and the link kept", func(t *testing.T) {
		real, link := filepath.Join(dir, "v3.json"), filepath.Join(dir, "current.json")
		os.WriteFile(real, []byte("v3"), 0o644)
		if err := os.Symlink("v3.json", link); err != nil {
			t.Skip("no symbolic links here:", err)
		}
		if err := WriteFile(link, []byte("v4")); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("the link was replaced: %v %v", fi.Mode(), err)
		}
		if b, _ := os.ReadFile(real); string(b) != "v4" {
			t.Errorf("the link's target holds %q, want v4", b)
		}
	})
	// A link made before the file it names (current.json ->
	// releases/v9.json, v9 not written yet) was replaced by a regular
	// file, while a link to an existing file was kept.
	t.Run("through a link to a file not written yet, the file is made where it points", func(t *testing.T) {
		if err := os.Mkdir(filepath.Join(dir, "releases"), 0o755); err != nil {
			t.Fatal(err)
		}
		link, real := filepath.Join(dir, "next.json"), filepath.Join(dir, "releases", "v9.json")
		if err := os.Symlink(filepath.Join("releases", "v9.json"), link); err != nil {
			t.Skip("no symbolic links here:", err)
		}
		if err := WriteFile(link, []byte("v9")); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("the link was replaced: %v %v", fi.Mode(), err)
		}
		if b, _ := os.ReadFile(real); string(b) != "v9" {
			t.Errorf("the link's target holds %q, want v9", b)
		}
	})
	t.Run("a directory is an error that says so", func(t *testing.T) {
		if err := WriteFile(dir, []byte("x")); err == nil || !strings.Contains(err.Error(), "it is a directory") {
			t.Errorf("err = %v", err)
		}
	})
}

// The directory's fsync after the rename is what makes the rename survive
// a crash; its error was ignored, so a write reported done could vanish.
// A filesystem that cannot sync directories at all is not an error.
func TestCommitReportsAFailedDirectorySync(t *testing.T) {
	tests := []struct {
		name    string
		syncErr error
		want    string // "" for no error
	}{
		{"an I/O error", syscall.EIO, "may not survive a crash"},
		{"a filesystem that cannot sync directories (EINVAL)", syscall.EINVAL, ""},
		{"a filesystem that cannot sync directories (ENOTSUP)", syscall.ENOTSUP, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dirSync = func(d *os.File) error {
				if fi, err := d.Stat(); err != nil || !fi.IsDir() {
					t.Errorf("dirSync on %s: not a directory (%v)", d.Name(), err)
				}
				return &os.PathError{Op: "sync", Path: d.Name(), Err: tt.syncErr}
			}
			defer func() { dirSync = (*os.File).Sync }()
			path := filepath.Join(t.TempDir(), "out.json")
			err := WriteFile(path, []byte("{}"))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("WriteFile: %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), path) || !errors.Is(err, tt.syncErr) {
				t.Fatalf("WriteFile: %v, want an error naming %s and saying %q", err, path, tt.want)
			}
		})
	}
}

// A writer killed before Commit or Abort (kill -9, the OOM killer) left
// its temporary file, as big as what it had written, and nothing ever
// removed it: every killed run of an import or an export into a folder
// added one. The next write of the same file removes those whose writer
// is gone, and leaves a live writer's file, and a file just made, alone.
func TestCreateRemovesStaleTemporaryFiles(t *testing.T) {
	if !canTellStale {
		t.Skip("no flock here: stale temporary files are left")
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "out.jsonl")
	old := time.Now().Add(-2 * staleAge)
	mk := func(name string, age time.Time) string {
		q := filepath.Join(dir, name)
		if err := os.WriteFile(q, []byte("half"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(q, age, age); err != nil {
			t.Fatal(err)
		}
		return q
	}
	dead := mk(".out.jsonl.tmp-123", old)
	fresh := mk(".out.jsonl.tmp-456", time.Now())
	other := mk(".out.jsonl.tmp-7x", old)   // not a name createTemp makes
	another := mk(".out2.jsonl.tmp-8", old) // another file's
	live, err := Create(p)                  // a writer still at work
	if err != nil {
		t.Fatal(err)
	}
	if _, err := live.Write([]byte("live")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(live.Name(), old, old); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(p, []byte("second")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dead); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the killed writer's %s is still there (%v)", dead, err)
	}
	for _, q := range []string{fresh, other, another, live.Name()} {
		if _, err := os.Stat(q); err != nil {
			t.Errorf("%s was removed: %v", q, err)
		}
	}
	if err := live.Commit(); err != nil {
		t.Errorf("the live writer's commit: %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "live" {
		t.Errorf("content %q, want the live writer's", b)
	}
}
