package pathonce

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestInner(t *testing.T) {
	dir := t.TempDir()
	_, openErr := os.Open(filepath.Join(dir, "missing"))
	wrapped := fmt.Errorf("decode: %w", openErr)
	for _, tt := range []struct {
		name string
		path string
		err  error
		want string
	}{
		{"the path an os error names is dropped", filepath.Join(dir, "missing"), openErr, "no such file or directory"},
		{"another path stays", filepath.Join(dir, "other"), openErr, openErr.Error()},
		{"a wrapped error keeps its context and path", filepath.Join(dir, "missing"), wrapped, wrapped.Error()},
		{"an error without a path is as it was", "x", errors.New("boom"), "boom"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := Inner(tt.path, tt.err)
			if got.Error() != tt.want {
				t.Errorf("Inner(%q, %q) = %q, want %q", tt.path, tt.err, got, tt.want)
			}
			if errors.Is(tt.err, fs.ErrNotExist) && !errors.Is(got, fs.ErrNotExist) {
				t.Errorf("Inner(%q, %q) = %q lost fs.ErrNotExist", tt.path, tt.err, got)
			}
		})
	}
}
