package report

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// The swap puts a new folder where the report folder was: it must keep
// the old one's owner, group and set-group-ID bit, or a folder a web
// server reads through its group (drwxr-s--- ci:www-data) became the
// runner's own (drwxr-x--- root:root) and the server lost it.
func TestWriteStagedKeepsTheFoldersOwnerAndMode(t *testing.T) {
	root := os.Geteuid() == 0
	dir := filepath.Join(t.TempDir(), "report")
	notes := filepath.Join(dir, "notes")
	for _, d := range []string{dir, notes} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if root {
			// nobody: a user and group this process is not.
			if err := os.Chown(d, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chmod(d, 0o750|fs.ModeSetgid); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]*syscall.Stat_t{}
	for _, d := range []string{dir, notes} {
		var st syscall.Stat_t
		if err := syscall.Stat(d, &st); err != nil {
			t.Fatal(err)
		}
		want[d] = &st
	}
	fill := func(stage string) error {
		return os.WriteFile(filepath.Join(stage, "index.html"), []byte("new"), 0o644)
	}
	if err := writeStaged(context.Background(), dir, fill); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dir, notes} {
		var got syscall.Stat_t
		if err := syscall.Stat(d, &got); err != nil {
			t.Fatal(err)
		}
		w := want[d]
		if got.Mode != w.Mode {
			t.Errorf("%s: mode %o, want %o as before the report", d, got.Mode, w.Mode)
		}
		if got.Uid != w.Uid || got.Gid != w.Gid {
			t.Errorf("%s: owner %d:%d, want %d:%d as before the report", d, got.Uid, got.Gid, w.Uid, w.Gid)
		}
	}
	if !root {
		t.Log("not root: the owner could not be another user's, so only the mode was tested")
	}
}
