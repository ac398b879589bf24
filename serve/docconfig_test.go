package serve

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// docs/serving.md shows the config file with its "Defaults shown": an
// operator copies it and edits one value, so a default changed in code
// but not on the page makes every other value of their file a silent
// change from what they ran before. The block, read as a config file,
// must give DefaultConfig. The sections it leaves to other pages
// (exploration and drift: loop.md; the proxy's keys: proxy.md) are taken
// from DefaultConfig.
func TestDocsConfigShowsTheDefaults(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "docs", "serving.md"))
	if err != nil {
		t.Fatal(err)
	}
	block, err := defaultsBlock(string(b))
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultConfig()
	base := Config{Exploration: want.Exploration, Drift: want.Drift, Proxy: want.Proxy}
	got, err := ParseConfig([]byte(block), base)
	if err != nil {
		t.Fatalf("serving.md's config block does not load: %v", err)
	}
	for _, d := range configDiffs("", reflect.ValueOf(got), reflect.ValueOf(want)) {
		t.Errorf("serving.md's config block: %s", d)
	}
}

// defaultsBlock returns the yaml block of serving.md's "### Config file".
func defaultsBlock(page string) (string, error) {
	_, sec, ok := strings.Cut(page, "\n### Config file\n")
	if !ok {
		return "", fmt.Errorf(`serving.md has no "### Config file" section`)
	}
	sec, _, _ = strings.Cut(sec, "\n## ")
	_, block, ok := strings.Cut(sec, "```yaml\n")
	if !ok {
		return "", fmt.Errorf(`serving.md's "Config file" section has no yaml block`)
	}
	block, _, _ = strings.Cut(block, "```")
	return block, nil
}

// configDiffs names each field where got and want differ by its yaml
// path ("limits.max_batch is 128 on the page, 256 in DefaultConfig").
func configDiffs(path string, got, want reflect.Value) []string {
	if got.Kind() == reflect.Struct {
		var diffs []string
		for i := range got.NumField() {
			f := got.Type().Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			p := path
			if name != "" {
				p = strings.TrimPrefix(path+"."+name, ".")
			}
			diffs = append(diffs, configDiffs(p, got.Field(i), want.Field(i))...)
		}
		return diffs
	}
	if reflect.DeepEqual(got.Interface(), want.Interface()) {
		return nil
	}
	show := func(v reflect.Value) any {
		if v.Kind() == reflect.Pointer && !v.IsNil() {
			return v.Elem().Interface()
		}
		return v.Interface()
	}
	return []string{fmt.Sprintf("%s is %v on the page, %v in DefaultConfig", path, show(got), show(want))}
}

// The pages' other config examples (the proxy's tiers, client keys, the
// N-tier list, exploration) are what users copy into their file. A key
// renamed or removed in code makes the copy refuse to start ("unknown
// key"), so each yaml block on a docs/ page must load as a config file.
func TestDocsConfigExamplesLoad(t *testing.T) {
	pages, err := filepath.Glob(filepath.Join("..", "docs", "*.md"))
	if err != nil || len(pages) == 0 {
		t.Fatalf("no docs/*.md pages found from serve (%v)", err)
	}
	blocks := 0
	for _, page := range pages {
		b, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, blk := range yamlBlocks(string(b)) {
			blocks++
			if _, err := ParseConfig([]byte(blk.text), DefaultConfig()); err != nil {
				t.Errorf("%s:%d: the yaml block does not load as a config file: %v", filepath.Base(page), blk.line, err)
			}
		}
	}
	// serving.md, loop.md and proxy.md hold six between them; fewer
	// means the scan stopped finding them.
	if blocks < 5 {
		t.Errorf("found only %d yaml blocks on the docs pages; the scan no longer finds them", blocks)
	}
}

type pageBlock struct {
	line int // the page line of the block's first line
	text string
}

// yamlBlocks returns the fenced yaml blocks of a Markdown page.
func yamlBlocks(page string) []pageBlock {
	var out []pageBlock
	var cur *pageBlock
	for i, l := range strings.Split(page, "\n") {
		switch {
		case cur == nil && strings.TrimSpace(l) == "```yaml":
			cur = &pageBlock{line: i + 2}
		case cur != nil && strings.HasPrefix(strings.TrimSpace(l), "```"):
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.text += l + "\n"
		}
	}
	return out
}
