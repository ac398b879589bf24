// Package datasetstest finds the shared public routing data for tests and
// benchmarks. The data is never copied into the repository: it lives in
// ../shared/datasets beside the repository root (or wherever
// $TRIAGE_DATASETS says), and a test that needs it skips, naming the
// folder, when it is absent.
package datasetstest

import (
	"os"
	"path/filepath"
	"testing"
)

// Dir returns the shared datasets folder: $TRIAGE_DATASETS, else
// <repository root>/../shared/datasets, the root being the nearest folder
// above the working directory (a package's, under go test) that holds
// go.mod. It skips tb when the folder is absent.
func Dir(tb testing.TB) string {
	tb.Helper()
	if d := os.Getenv("TRIAGE_DATASETS"); d != "" {
		if _, err := os.Stat(d); err != nil {
			tb.Skipf("shared datasets folder %s (TRIAGE_DATASETS) is absent", d)
		}
		return d
	}
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Skip("no go.mod above the test; cannot find ../shared/datasets")
		}
		dir = parent
	}
	d := filepath.Join(dir, "..", "shared", "datasets")
	if _, err := os.Stat(d); err != nil {
		tb.Skipf("shared datasets folder %s is absent (set TRIAGE_DATASETS to its path)", d)
	}
	return d
}
