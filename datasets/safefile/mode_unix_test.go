//go:build unix

package safefile

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Outputs hold production prompts: a new one gets the user's umask (as
// the shell's > gives it), a replaced one keeps its permissions. Every
// output was 0644 whatever either said.
func TestModes(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	dir := t.TempDir()
	p := filepath.Join(dir, "new.jsonl")
	if err := WriteFile(p, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("a new file under umask 077: %v, %v; want -rw-------", fi.Mode(), err)
	}
	syscall.Umask(0o022)
	kept := filepath.Join(dir, "kept.json")
	if err := os.WriteFile(kept, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chmod(kept, 0o640)
	if err := WriteFile(kept, []byte("new")); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(kept); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("a replaced 0640 file: %v, %v; want -rw-r-----", fi.Mode(), err)
	}
	fresh := filepath.Join(dir, "fresh.json")
	if err := WriteFile(fresh, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(fresh); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("a new file under umask 022: %v, %v; want -rw-r--r--", fi.Mode(), err)
	}
}
