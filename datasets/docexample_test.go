package datasets

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The log line README.md and docs/design.md show is the format a user
// copies to write their own log. readme/ checks only that it is JSON; a
// field renamed or newly required in the reader would leave a page whose
// example no command accepts. Every json block line that holds
// "outcomes" must read as a labelled record with its fields filled.
func TestDocsLogExamplesRead(t *testing.T) {
	checked := 0
	for _, page := range []string{filepath.Join("..", "README.md"), filepath.Join("..", "docs", "design.md")} {
		b, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range jsonBlockLines(string(b)) {
			if !strings.Contains(l.text, `"outcomes"`) {
				continue
			}
			checked++
			name := filepath.Base(page)
			rec, err := NewReader(strings.NewReader(l.text), name, ReadOptions{}).Next()
			if err != nil {
				t.Errorf("%s:%d: the example log line does not read: %v", name, l.line, err)
				continue
			}
			if rec.ID == "" || rec.Text() == "" || len(rec.Meta) == 0 || rec.TS.IsZero() {
				t.Errorf("%s:%d: the example read without its id, prompt, meta or ts: %+v", name, l.line, rec)
			}
			scored := 0
			for _, o := range rec.Outcomes {
				if o.Score != nil {
					scored++
				}
			}
			if scored < 2 {
				t.Errorf("%s:%d: the example has %d scored outcomes, want the two tiers' (%+v)", name, l.line, scored, rec.Outcomes)
			}
		}
	}
	if checked < 2 {
		t.Errorf("found %d example log lines on README.md and docs/design.md, want one on each; the scan no longer finds them", checked)
	}
}

type pageLine struct {
	line int
	text string
}

// jsonBlockLines returns the lines of a Markdown page's json blocks.
func jsonBlockLines(page string) []pageLine {
	var out []pageLine
	in := false
	for i, l := range strings.Split(page, "\n") {
		switch {
		case !in && strings.TrimSpace(l) == "```json":
			in = true
		case in && strings.HasPrefix(strings.TrimSpace(l), "```"):
			in = false
		case in && strings.TrimSpace(l) != "":
			out = append(out, pageLine{i + 1, l})
		}
	}
	return out
}
