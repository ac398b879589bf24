package readme

import (
	"bufio"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Block is one fenced code block of a Markdown file.
type Block struct {
	// Info is the fence's info string (sh, json, ...).
	Info string
	// Line is the file's line number of the block's first line of content.
	Line int
	// Lines are the block's lines, without the fences.
	Lines []string
}

// Shell reports whether the block is one the README runs.
func (b Block) Shell() bool {
	switch b.Info {
	case "sh", "bash", "shell":
		return true
	}
	return false
}

// Blocks returns the fenced code blocks of a Markdown document. An
// unclosed fence is an error: the README would render wrong too.
func Blocks(md string) ([]Block, error) {
	var (
		out  []Block
		cur  *Block
		open int // line of the open fence
	)
	sc := bufio.NewScanner(strings.NewReader(md))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if cur == nil {
			if strings.HasPrefix(trimmed, "```") {
				cur = &Block{Info: strings.TrimSpace(strings.TrimPrefix(trimmed, "```")), Line: n + 1}
				open = n
			}
			continue
		}
		if trimmed == "```" {
			out = append(out, *cur)
			cur = nil
			continue
		}
		cur.Lines = append(cur.Lines, line)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if cur != nil {
		return nil, fmt.Errorf("line %d: the code fence is never closed", open)
	}
	return out, nil
}

// Command is one logical shell command of a block: a line, with the lines
// it continues onto (a trailing backslash) and any here-document body.
type Command struct {
	// First and Last are the README's line numbers it spans.
	First, Last int
	// Lines are its lines as written.
	Lines []string
	// Allow are the non-zero exit statuses a comment on it announces.
	Allow []int
}

var (
	heredoc  = regexp.MustCompile(`<<-?\s*['"]?([A-Za-z_][A-Za-z0-9_]*)['"]?`)
	announce = regexp.MustCompile(`#.*\bexit(?:s| status(?:es)?)?\s+((?:\d+)(?:\s*(?:,|or|and)\s*\d+)*)\b`)
	number   = regexp.MustCompile(`\d+`)
)

// Commands splits a shell block into logical commands.
func Commands(b Block) []Command {
	var out []Command
	for i := 0; i < len(b.Lines); i++ {
		c := Command{First: b.Line + i}
		// The command's own lines: this one and those a trailing
		// backslash continues onto.
		for {
			c.Lines = append(c.Lines, b.Lines[i])
			if !strings.HasSuffix(strings.TrimRight(b.Lines[i], " \t"), `\`) || i+1 == len(b.Lines) {
				break
			}
			i++
		}
		own := strings.Join(c.Lines, "\n")
		if m := announce.FindStringSubmatch(own); m != nil {
			for _, s := range number.FindAllString(m[1], -1) {
				v, _ := strconv.Atoi(s)
				c.Allow = append(c.Allow, v)
			}
		}
		// A here-document's body runs to its terminator line.
		if m := heredoc.FindStringSubmatch(own); m != nil {
			for i+1 < len(b.Lines) {
				i++
				c.Lines = append(c.Lines, b.Lines[i])
				if strings.TrimLeft(b.Lines[i], "\t") == m[1] {
					break
				}
			}
		}
		c.Last = b.Line + i
		out = append(out, c)
	}
	return out
}

// addr matches a loopback address with a port, as the README writes them.
var addr = regexp.MustCompile(`\b(127\.0\.0\.1|localhost):(\d{2,5})\b`)

// Ports returns the distinct ports the shell blocks name, in order.
func Ports(blocks []Block) []int {
	seen := map[int]bool{}
	var out []int
	for _, b := range blocks {
		if !b.Shell() {
			continue
		}
		for _, l := range b.Lines {
			for _, m := range addr.FindAllStringSubmatch(l, -1) {
				p, _ := strconv.Atoi(m[2])
				if !seen[p] {
					seen[p] = true
					out = append(out, p)
				}
			}
		}
	}
	sort.Ints(out)
	return out
}

// ReplacePorts rewrites every loopback address's port by ports[old].
func ReplacePorts(line string, ports map[int]int) string {
	return addr.ReplaceAllStringFunc(line, func(s string) string {
		m := addr.FindStringSubmatch(s)
		p, _ := strconv.Atoi(m[2])
		if q, ok := ports[p]; ok {
			return m[1] + ":" + strconv.Itoa(q)
		}
		return s
	})
}

// ScriptOptions says how to turn the README into a script.
type ScriptOptions struct {
	// Ports maps each port the README names to the one to use.
	Ports map[int]int
	// Skip maps a command, as written, to why it is not run.
	Skip map[string]string
	// SkipBlock returns why a block is not run, or "".
	SkipBlock func(Block) string
}

// exitUnannounced is the script's exit status for a command that failed
// where the README does not say it may.
const exitUnannounced = 97

// Script returns a bash script that runs the shell blocks in order in one
// shell. A command that exits non-zero with a status its comment does not
// announce stops the script with exitUnannounced and a line naming the
// README line: "readme: README.md:LINE: exit status N ...". Each block
// starts with a line "### README.md:LINE (Ns)", N being the seconds the
// script has run.
func Script(blocks []Block, opts ScriptOptions) string {
	var body []string
	lineOf := map[int]int{}    // script body line (1-based) -> README line
	allowOf := map[int][]int{} // script body line -> announced statuses
	emit := func(s string, readme int, allow []int) {
		body = append(body, s)
		if readme > 0 {
			lineOf[len(body)] = readme
			if len(allow) > 0 {
				allowOf[len(body)] = allow
			}
		}
	}
	for _, b := range blocks {
		if !b.Shell() {
			continue
		}
		if why := skipBlock(opts, b); why != "" {
			emit(fmt.Sprintf("echo %s", shellQuote(fmt.Sprintf("### README.md:%d skipped: %s", b.Line, why))), 0, nil)
			continue
		}
		emit(fmt.Sprintf(`printf '### README.md:%d (%%ss)\n' "$SECONDS"`, b.Line), 0, nil)
		for _, c := range Commands(b) {
			cmd := strings.TrimSpace(stripComment(strings.Join(c.Lines, "\n")))
			if why, ok := opts.Skip[cmd]; ok {
				emit(fmt.Sprintf("echo %s", shellQuote(fmt.Sprintf("### README.md:%d: %q not run: %s", c.First, cmd, why))), 0, nil)
				continue
			}
			// Every line of the command maps to its first: bash reports
			// a multi-line command at one of its lines, not always the
			// first.
			for _, l := range c.Lines {
				emit(ReplacePorts(l, opts.Ports), c.First, c.Allow)
			}
		}
	}
	emit(`printf '### end (%ss)\n' "$SECONDS"`, 0, nil)

	header := scriptHeader(lineOf, allowOf, 0)
	// Script line numbers are the body's shifted by the header, whose
	// length does not depend on the shift.
	header = scriptHeader(lineOf, allowOf, len(header))
	return strings.Join(append(header, body...), "\n") + "\n"
}

// scriptHeader is the script's preamble: strict pipelines, the tables
// from script line (body line + shift) to README line and announced
// statuses, and the ERR trap that checks a failure against them.
func scriptHeader(lineOf map[int]int, allowOf map[int][]int, shift int) []string {
	lines := make(map[int]string, len(lineOf))
	for k, v := range lineOf {
		lines[k+shift] = strconv.Itoa(v)
	}
	allows := make(map[int]string, len(allowOf))
	for k, v := range allowOf {
		s := make([]string, len(v))
		for i, x := range v {
			s[i] = strconv.Itoa(x)
		}
		allows[k+shift] = strconv.Quote(strings.Join(s, " "))
	}
	return []string{
		"# Generated from README.md by the readme package's test.",
		"set -E -o pipefail",
		"declare -A __readme_line=(" + assoc(lines) + " )",
		"declare -A __readme_allow=(" + assoc(allows) + " )",
		`__readme_err() {`,
		`  case " ${__readme_allow[$2]} " in *" $1 "*) echo "### README.md:${__readme_line[$2]}: exit status $1, as announced" >&2; return 0;; esac`,
		`  echo "readme: README.md:${__readme_line[$2]:-?}: exit status $1, which the README does not announce: $3" >&2`,
		fmt.Sprintf(`  exit %d`, exitUnannounced),
		`}`,
		`trap '__readme_err $? $LINENO "$BASH_COMMAND"' ERR`,
	}
}

func skipBlock(opts ScriptOptions, b Block) string {
	if opts.SkipBlock == nil {
		return ""
	}
	return opts.SkipBlock(b)
}

func assoc(m map[int]string) string {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	var sb strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&sb, " [%d]=%s", k, m[k])
	}
	return sb.String()
}

// stripComment drops a trailing "# ..." comment from each line (not one
// inside quotes), to compare a command with the skip list.
func stripComment(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = l[:commentStart(l)]
	}
	return strings.Join(lines, "\n")
}

// commentStart is the index of l's comment, or len(l).
func commentStart(l string) int {
	var q rune
	for j, r := range l {
		switch {
		case q != 0:
			if r == q {
				q = 0
			}
		case r == '\'' || r == '"':
			q = r
		case r == '#' && (j == 0 || l[j-1] == ' ' || l[j-1] == '\t'):
			return j
		}
	}
	return len(l)
}

// shellQuote quotes s for bash as one word.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
