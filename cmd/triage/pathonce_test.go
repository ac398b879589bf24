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
		{"a --data folder that cannot be listed is not said to hold no log", []string{"export-libsvm", "--data", unreadable, "--fast", "a", "--strong", "b", "-o", out}, unreadable, "read folder " + unreadable + ": permission denied", true},
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

// TestFeedbackDBErrorsNameThePathOnce: as a user without write permission,
// serve and feedback compact said "open feedback db F: open F: permission
// denied", and salvage named its temporary file (".new.db.new-123"), a
// name the user never gave, instead of the folder it could not write.
func TestFeedbackDBErrorsNameThePathOnce(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root opens a read-only file for writing")
	}
	dir := t.TempDir()
	db := filepath.Join(dir, "feedback.db")
	if err := fillStore(t, db).Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(db, 0o444); err != nil {
		t.Fatal(err)
	}
	ro := filepath.Join(dir, "ro")
	if err := os.Mkdir(ro, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(ro, 0o755) })
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"feedback compact on a read-only db", []string{"feedback", "compact", "--db", db}, "open feedback db " + db + ": permission denied"},
		{"serve on a read-only db", []string{"serve", "--model", "x.json", "--db", db, "--addr", "127.0.0.1:0"}, "open feedback db " + db + ": permission denied"},
		{"feedback salvage into a read-only folder", []string{"feedback", "salvage", "--db", db, "-o", filepath.Join(ro, "new.db")}, "a new file cannot be made in " + ro + ": permission denied"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, code := run(t, tt.args...)
			if code == 0 || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want %q", code, stderr, tt.want)
			}
			if strings.Count(stderr, db) > 1 || strings.Contains(stderr, ".new-") {
				t.Errorf("stderr %q names %s more than once, or a temporary file", stderr, db)
			}
		})
	}
}
