package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// docs/design.md's "The pieces" is the map a newcomer reads the code
// by: every folder it names must be there, and it names every internal/
// helper, the one place the page lists packages one by one.
func TestDocsPiecesMatchTheTree(t *testing.T) {
	root := filepath.Join("..", "..")
	b, err := os.ReadFile(filepath.Join(root, "docs", "design.md"))
	if err != nil {
		t.Fatal(err)
	}
	block := piecesBlock(string(b))
	if block == "" {
		t.Fatal(`docs/design.md has no "## The pieces" section with a fenced block; the test would check nothing`)
	}
	named := 0
	for _, m := range piecesFolder.FindAllStringSubmatch(block, -1) {
		named++
		if fi, err := os.Stat(filepath.Join(root, m[1])); err != nil || !fi.IsDir() {
			t.Errorf("design.md's pieces name %s, which is not a folder of the repository", m[1])
		}
	}
	if named < 8 {
		t.Errorf("found only %d folders in design.md's pieces; the scan no longer reads the block", named)
	}
	helpers, err := os.ReadDir(filepath.Join(root, "internal"))
	if err != nil {
		t.Fatal(err)
	}
	_, internalLine, _ := strings.Cut(block, "internal/")
	for _, h := range helpers {
		if !h.IsDir() {
			continue
		}
		if goFiles, _ := filepath.Glob(filepath.Join(root, "internal", h.Name(), "*.go")); len(goFiles) == 0 {
			continue
		}
		if !regexp.MustCompile(`\b` + regexp.QuoteMeta(h.Name()) + `\b`).MatchString(internalLine) {
			t.Errorf("internal/%s is not among the helpers design.md's pieces list after internal/", h.Name())
		}
	}
}

// piecesFolder matches a folder in the pieces block's second column
// ("datasets/", "models/replay/", "cmd/triage").
var piecesFolder = regexp.MustCompile(`(?m)^.*?\s{2,}((?:[a-z]+/)+[a-z]*)\s`)

// piecesBlock returns the fenced block of design.md's "The pieces".
func piecesBlock(page string) string {
	_, sec, ok := strings.Cut(page, "\n## The pieces\n")
	if !ok {
		return ""
	}
	sec, _, _ = strings.Cut(sec, "\n## ")
	_, block, ok := strings.Cut(sec, "```\n")
	if !ok {
		return ""
	}
	block, _, _ = strings.Cut(block, "```")
	return block
}
