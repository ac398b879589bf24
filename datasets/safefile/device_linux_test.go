package safefile

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Renaming a temporary file over a device (as root, which CI is) would
// replace it with a regular file: with -o /dev/null, for every process
// on the machine. The test makes its own null device in a temporary
// directory instead of risking the real one.
func TestWriteFileToADevice(t *testing.T) {
	p := filepath.Join(t.TempDir(), "null")
	if err := syscall.Mknod(p, syscall.S_IFCHR|0o666, 1<<8|3); err != nil { // major 1, minor 3: Linux's null device
		t.Skip("cannot make a device node here (not root?):", err)
	}
	f, err := Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("gone")); err != nil {
		t.Fatal(err)
	}
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	f.Abort() // after Commit: nothing
	if fi, err := os.Stat(p); err != nil || fi.Mode()&os.ModeDevice == 0 {
		t.Fatalf("%s is no longer a device: %v, %v", p, fi.Mode(), err)
	}
	if m, _ := filepath.Glob(filepath.Join(filepath.Dir(p), ".null.tmp-*")); len(m) > 0 {
		t.Errorf("temporary files left: %v", m)
	}
}
