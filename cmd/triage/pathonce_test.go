package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestInputErrorsNameThePathOnce runs commands on inputs and outputs that
// cannot be read or written. The os package names the path in its error
// and the command named it again ("read d: read d: is a directory"), or
// a folder that could not be read was said to hold no file.
func TestInputErrorsNameThePathOnce(t *testing.T) {
	dir := t.TempDir()
	folder := filepath.Join(dir, "folder")
	if err := os.Mkdir(folder, 0o755); err != nil {
		t.Fatal(err)
	}
	evals := filepath.Join(dir, "evals")
	if err := os.MkdirAll(filepath.Join(evals, "gsm8k_responses.csv"), 0o755); err != nil {
		t.Fatal(err)
	}
	unreadable := filepath.Join(dir, "unreadable")
	if err := os.MkdirAll(filepath.Join(unreadable, "mmlu"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, unreadable, "log.jsonl", "")
	if err := os.Chmod(filepath.Join(unreadable, "mmlu"), 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(unreadable, 0o300); err != nil { // writable, not listable
		t.Fatal(err)
	}
	t.Cleanup(func() {
		os.Chmod(unreadable, 0o755)
		os.Chmod(filepath.Join(unreadable, "mmlu"), 0o755)
	})
	out := filepath.Join(t.TempDir(), "out.jsonl")
	for _, tt := range []struct {
		name     string
		args     []string
		path     string // named once
		want     string
		needUser bool // permissions do not stop root
	}{
		{"import wide-csv names a folder given as --file once", []string{"import", "wide-csv", "--file", folder, "--prompt-col", "p", "-o", out}, folder, "read " + folder + ": is a directory", false},
		{"import routellm names a csv that is a folder once", []string{"import", "routellm", "--bench", "gsm8k", "--dir", evals, "-o", out}, filepath.Join(evals, "gsm8k_responses.csv"), "read " + filepath.Join(evals, "gsm8k_responses.csv") + ": is a directory", false},
		{"import routellm names a contamination list that is a folder once", []string{"import", "routellm", "--bench", "gsm8k", "--dir", evals, "--exclude-contaminated", folder, "-o", out}, folder, "read " + folder + " after line 0: is a directory", false},
		{"a report folder that cannot be looked at is named once", []string{"curves", "--model", "x.json", "--data", sampleLog, "-o", filepath.Join(unreadable, "mmlu", "report")}, filepath.Join(unreadable, "mmlu", "report"), "cannot be looked at: permission denied", true},
		{"a --data folder that cannot be listed is not said to hold no log", []string{"eval", "--model", "x.json", "--data", unreadable}, unreadable, "for flag -data: the folder cannot be read: permission denied", true},
		{"an mmlu folder that cannot be listed is not said to hold no file", []string{"import", "routellm", "--bench", "mmlu", "--dir", unreadable, "-o", out}, filepath.Join(unreadable, "mmlu"), "read folder " + filepath.Join(unreadable, "mmlu") + ": permission denied", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.needUser && os.Geteuid() == 0 {
				t.Skip("root reads a folder without read permission")
			}
			_, stderr, code := run(t, tt.args...)
			if code == 0 {
				t.Fatalf("exit 0, want an error; stderr %q", stderr)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr %q, want %q", stderr, tt.want)
			}
			// The last line is the command's own; the flag package prints
			// its message before the usage.
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if n := strings.Count(lines[len(lines)-1], tt.path); n != 1 {
				t.Errorf("stderr %q names %s %d times, want once", stderr, tt.path, n)
			}
		})
	}
}
