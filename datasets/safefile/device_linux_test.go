package safefile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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

// TestWriteErrorsNameThePathOnce: the error of a write to a device named
// it twice ("write /dev/full: write /dev/full: no space left on
// device"), and one to a regular file named its temporary file too.
func TestWriteErrorsNameThePathOnce(t *testing.T) {
	t.Run("a full device", func(t *testing.T) {
		if _, err := os.Stat("/dev/full"); err != nil {
			t.Skip("no /dev/full here:", err)
		}
		err := WriteFile("/dev/full", []byte("x"))
		if got := fmt.Sprint(err); strings.Count(got, "/dev/full") != 1 || !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("got %q, want /dev/full named once and ENOSPC", got)
		}
	})
	t.Run("a regular file, written after its temporary file is closed", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "router.json")
		f, err := Create(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Abort()
		f.File.Close()
		_, err = f.Write([]byte("x"))
		if got, want := fmt.Sprint(err), "write "+p+": "+os.ErrClosed.Error(); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	})
}
