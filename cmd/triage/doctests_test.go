package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The pages cite tests as the evidence for what they claim ("test:
// `TestMergeIsLossless`", "`TestSelectionBias`
// (models/retrain/retrain_test.go)"), and a reader checks a claim by
// running the one named. A test renamed or moved in a refactor leaves a
// citation that `go test -run` matches nothing for, without an error:
// every test, benchmark and fuzz target the pages name must exist, in the
// file the page gives where it gives one.
func TestDocsNameOnlyExistingTests(t *testing.T) {
	root := filepath.Join("..", "..")
	defined := map[string][]string{} // name -> files (from root)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "out" || d.Name() == "bin") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		for _, m := range testFunc.FindAllStringSubmatch(string(b), -1) {
			defined[m[1]] = append(defined[m[1]], filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	pages, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil || len(pages) == 0 {
		t.Fatalf("no docs/*.md pages found from cmd/triage (%v)", err)
	}
	pages = append(pages, filepath.Join(root, "README.md"))
	named := 0
	for _, page := range pages {
		b, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		for _, m := range docTestName.FindAllStringSubmatch(text, -1) {
			named++
			if defined[m[1]] == nil {
				t.Errorf("%s names %s, which no _test.go file defines", filepath.Base(page), m[1])
			}
		}
		for _, m := range docTestFile.FindAllStringSubmatch(text, -1) {
			name, file := m[1], m[2]
			found := false
			for _, f := range defined[name] {
				found = found || f == file
			}
			if defined[name] != nil && !found {
				t.Errorf("%s puts %s in %s; it is in %s", filepath.Base(page), name, file, strings.Join(defined[name], ", "))
			}
		}
	}
	// The pages name some two dozen; far fewer means the pattern stopped
	// finding them, and the test would pass on nothing.
	if named < 20 {
		t.Errorf("the pages name only %d tests; the scan no longer finds them", named)
	}
}

var (
	testFunc    = regexp.MustCompile(`(?m)^func ((?:Test|Benchmark|Fuzz)[A-Z]\w*)\(`)
	docTestName = regexp.MustCompile(`\b((?:Test|Benchmark|Fuzz)[A-Z]\w*)`)
	// docTestFile matches a test named with its file: "`TestX` (a/b_test.go"
	// or "`TestX` in a/b_test.go".
	docTestFile = regexp.MustCompile("`((?:Test|Benchmark|Fuzz)[A-Z]\\w*)`\\s+(?:\\(|in\\s+)([\\w/]+_test\\.go)")
)
