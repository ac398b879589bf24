package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// A reader types what the pages show. A flag renamed or removed in code
// but still named in README.md's prose or on a docs/ page (whose command
// blocks no test runs) fails on their machine with "flag provided but not
// defined", so every `triage CMD --flag` the pages show must be one of
// CMD's flags.
func TestDocsNameOnlyDefinedFlags(t *testing.T) {
	pages, err := filepath.Glob(filepath.Join("..", "..", "docs", "*.md"))
	if err != nil || len(pages) == 0 {
		t.Fatalf("no docs/*.md pages found from cmd/triage (%v)", err)
	}
	pages = append([]string{filepath.Join("..", "..", "README.md")}, pages...)
	defined := map[string]map[string]bool{}
	checked := 0
	for _, page := range pages {
		b, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range docFlagUses(string(b), isCommand) {
			if defined[u.cmd] == nil {
				defined[u.cmd] = flagsOf(t, u.cmd)
			}
			checked++
			if !defined[u.cmd][u.flag] {
				t.Errorf("%s:%d: `triage %s` has no flag -%s (in %q); fix the page or the command", filepath.Base(page), u.line, u.cmd, u.flag, u.text)
			}
		}
	}
	// The pages name a few hundred; far fewer means the scanner stopped
	// finding them, and the test would pass on nothing.
	if checked < 200 {
		t.Errorf("checked only %d flags on %d pages; the scanner no longer finds the pages' commands", checked, len(pages))
	}
}

// The scanner finds a wrong flag wherever the pages show one, and leaves
// alone what is not a triage command line.
func TestDocFlagUses(t *testing.T) {
	page := "Run `triage train --data F --nope 1 -o X` or `eval --cv 5`.\n" +
		"liblinear's `train -s 0` is not ours, nor is `--lonely`.\n" +
		"```sh\n" +
		"TRIAGE_ADMIN_TOKEN=x bin/triage serve --model m \\\n" +
		"  --watch | grep x --count\n" +
		"bin/triage feedback export --db F -o out # --comment\n" +
		"```\n" +
		"A span over two lines: `triage\ncurves --grid 5`.\n" +
		"```\nRun 'triage feedback check --db F' to list it, then -o G.\n```\n"
	var got []string
	for _, u := range docFlagUses(page, isCommand) {
		got = append(got, u.cmd+" "+u.flag)
	}
	want := []string{"serve model", "serve watch", "feedback export db", "feedback export o", "feedback check db", // blocks first
		"train data", "train nope", "train o", "eval cv", "curves grid"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("docFlagUses found %q, want %q", got, want)
	}
}

type docFlagUse struct {
	line      int
	cmd, flag string
	text      string
}

var (
	codeSpan = regexp.MustCompile("`[^`]+`")
	flagWord = regexp.MustCompile(`^(--?)([A-Za-z][A-Za-z0-9-]*)(=.*)?$`)
)

// docFlagUses returns the flags given to triage commands on a Markdown
// page: on the lines of its fenced blocks (a line ending in a backslash
// goes on) and in its inline code spans. In a span that starts with a
// command name without "triage" ("`eval --model`"), only --flags count:
// a single dash there may be another tool's ("liblinear `train -s 0`").
func docFlagUses(page string, cmdAt func(words []string) (string, int)) []docFlagUse {
	var uses []docFlagUse
	lines := strings.Split(page, "\n")
	var prose strings.Builder
	proseLine := []int{} // the page line of each prose line
	inBlock := false
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			inBlock = !inBlock
			prose.WriteString("\n")
			proseLine = append(proseLine, i+1)
			continue
		}
		if !inBlock {
			prose.WriteString(l + "\n")
			proseLine = append(proseLine, i+1)
			continue
		}
		first := i + 1
		for strings.HasSuffix(l, `\`) && i+1 < len(lines) {
			i++
			l = strings.TrimSuffix(l, `\`) + " " + lines[i]
			prose.WriteString("\n")
			proseLine = append(proseLine, i+1)
		}
		prose.WriteString("\n")
		proseLine = append(proseLine, i+1)
		uses = append(uses, commandFlags(first, l, strings.Fields(l), cmdAt, true)...)
	}
	text := prose.String()
	for _, m := range codeSpan.FindAllStringIndex(text, -1) {
		span := text[m[0]+1 : m[1]-1]
		line := proseLine[strings.Count(text[:m[0]], "\n")]
		words := strings.Fields(span)
		if name, n := cmdAt(words); n > 0 {
			uses = append(uses, flagsAfter(line, span, name, words[n:], false)...)
			continue
		}
		uses = append(uses, commandFlags(line, span, words, cmdAt, true)...)
	}
	return uses
}

// commandFlags returns the flags given to every "triage CMD" in words.
func commandFlags(line int, text string, words []string, cmdAt func([]string) (string, int), dashes bool) []docFlagUse {
	var uses []docFlagUse
	for i, w := range words {
		w = strings.TrimLeft(w, `'"(`)
		if w != "triage" && !strings.HasSuffix(w, "/triage") {
			continue
		}
		if name, n := cmdAt(words[i+1:]); n > 0 {
			uses = append(uses, flagsAfter(line, text, name, words[i+1+n:], dashes)...)
		}
	}
	return uses
}

// flagsAfter returns the flags in words up to the end of the command (a
// pipe, a redirection, a comment, a subshell, another command, or the
// closing quote of a command quoted in a message). Single-dash flags
// count only when single is set.
func flagsAfter(line int, text, cmd string, words []string, single bool) []docFlagUse {
	var uses []docFlagUse
	for _, w := range words {
		if strings.ContainsAny(w[:1], "|;&#><(") || strings.HasPrefix(w, "$(") || w == "triage" || strings.HasSuffix(w, "/triage") {
			break
		}
		if strings.HasSuffix(w, "'") || strings.HasSuffix(w, `"`) {
			break
		}
		m := flagWord.FindStringSubmatch(w)
		if m == nil || (m[1] == "-" && !single) {
			continue
		}
		uses = append(uses, docFlagUse{line: line, cmd: cmd, flag: m[2], text: text})
	}
	return uses
}

// isCommand says whether words start with a command's name, and which
// ("feedback export" before "feedback").
func isCommand(words []string) (string, int) {
	if len(words) >= 2 {
		if _, ok := commands[words[0]+" "+words[1]]; ok {
			return words[0] + " " + words[1], 2
		}
	}
	if len(words) >= 1 {
		if _, ok := commands[words[0]]; ok || words[0] == "version" {
			for name := range commands {
				if strings.HasPrefix(name, words[0]+" ") {
					// A group whose subcommand is not spelt out
					// ("import "$@""): whose flags follow is unknown.
					return "", 0
				}
			}
			return words[0], 1
		}
	}
	return "", 0
}

// flagsOf returns the flags cmd's help lists (-h and -help always parse).
func flagsOf(tb testing.TB, cmd string) map[string]bool {
	tb.Helper()
	flags := map[string]bool{"h": true, "help": true}
	if cmd == "version" {
		// Main handles version itself; it takes --json and nothing else.
		flags["json"] = true
		return flags
	}
	out, errOut, code := run(tb, append(strings.Fields(cmd), "-h")...)
	if code != 0 {
		tb.Fatalf("triage %s -h: exit %d, %s", cmd, code, errOut)
	}
	for _, l := range strings.Split(out, "\n") {
		if name, ok := strings.CutPrefix(l, "  -"); ok {
			name, _, _ = strings.Cut(name, " ")
			flags[name] = true
		}
	}
	return flags
}

// The benchmark scripts under bench/ are how the pages' figures are
// remade, and no test runs them (they take minutes to hours): a flag they
// give triage that it no longer defines fails the rerun only at that
// step. They call the binary through a variable (T="$WORK/triage").
func TestBenchScriptsNameOnlyDefinedFlags(t *testing.T) {
	var scripts []string
	err := filepath.WalkDir(filepath.Join("..", "..", "bench"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".sh") {
			scripts = append(scripts, p)
		}
		return err
	})
	if err != nil || len(scripts) == 0 {
		t.Fatalf("no bench/**/*.sh found from cmd/triage (%v)", err)
	}
	texts := map[string]string{}
	binVars := map[string]bool{}
	for _, s := range scripts {
		b, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		texts[s] = string(b)
		for _, m := range binAssign.FindAllStringSubmatch(string(b), -1) {
			binVars[m[1]] = true
		}
	}
	if len(binVars) == 0 {
		t.Fatal(`no bench script assigns the binary to a variable (T="$WORK/triage"); the scan would check nothing`)
	}
	defined := map[string]map[string]bool{}
	checked := 0
	for _, s := range scripts {
		lines := strings.Split(strings.ReplaceAll(texts[s], "\\\n", " "), "\n")
		for i, l := range lines {
			words := strings.Fields(l)
			for j, w := range words {
				if v := strings.Trim(w, `"{}$`); strings.HasPrefix(strings.TrimLeft(w, `"`), "$") && binVars[v] {
					words[j] = "triage"
				}
				words[j] = strings.TrimRight(words[j], `"`)
			}
			for _, u := range commandFlags(i+1, l, words, isCommand, true) {
				if defined[u.cmd] == nil {
					defined[u.cmd] = flagsOf(t, u.cmd)
				}
				checked++
				if !defined[u.cmd][u.flag] {
					t.Errorf("%s: a line gives `triage %s` -%s, which it does not define: %q", s, u.cmd, u.flag, strings.TrimSpace(u.text))
				}
			}
		}
	}
	if checked < 60 {
		t.Errorf("checked only %d flags in %d scripts; the scan no longer finds their triage commands", checked, len(scripts))
	}
}

// binAssign matches a script's variable that holds the triage binary.
var binAssign = regexp.MustCompile(`(?m)^\s*(?:local\s+)?([A-Za-z_][A-Za-z0-9_]*)="?[^"\s]*/triage"?\s*$`)

// docs/serving.md lists serve's flags in one sentence ("Flags (`triage
// serve -h`): ..."), the place an operator looks for what can be set
// without a config file. A flag added to serve and not to that sentence
// is one nobody finds there, so the sentence must name every flag
// serve -h lists.
func TestServingPageListsEveryServeFlag(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "serving.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, list, ok := strings.Cut(string(b), "Flags (`triage serve -h`):")
	if !ok {
		t.Fatal("docs/serving.md has no \"Flags (`triage serve -h`):\" sentence; the test would check nothing")
	}
	list, _, _ = strings.Cut(list, "\n\n")
	named := map[string]bool{}
	for _, m := range regexp.MustCompile("`--([a-z0-9-]+)").FindAllStringSubmatch(list, -1) {
		named[m[1]] = true
	}
	for f := range flagsOf(t, "serve") {
		if f != "h" && f != "help" && !named[f] {
			t.Errorf("docs/serving.md's list of serve flags does not name --%s", f)
		}
	}
}
