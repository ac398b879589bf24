// Command triage learns from logs which LLM requests a fast model can answer,
// and serves that decision over HTTP. Each subcommand lives in its own file
// and registers itself in init; this file owns dispatch and exit statuses.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/triage-router/triage/internal/pathonce"
	suggestpkg "github.com/triage-router/triage/internal/suggest"
)

// Env is what a subcommand may touch of the outside world, so tests can run
// Main in-process.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Getenv reads an environment variable.
	Getenv func(string) string
	// IsTerminal says whether Stderr is a terminal (progress bars).
	IsTerminal bool
}

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *Env, args []string) error
}

var commands = map[string]command{}

// register adds a subcommand. Names with a space ("model show") are
// dispatched on their first two words.
func register(name, summary string, run func(ctx context.Context, env *Env, args []string) error) {
	if _, dup := commands[name]; dup {
		panic("triage: command registered twice: " + name)
	}
	commands[name] = command{name: name, summary: summary, run: run}
}

// UsageError is a mistake in the command line; it exits with status 2.
type UsageError struct {
	Msg  string
	Hint string
}

func (e *UsageError) Error() string {
	if e.Hint == "" {
		return e.Msg
	}
	return e.Msg + " (" + e.Hint + ")"
}

func usagef(hint, format string, args ...any) error {
	return &UsageError{Msg: fmt.Sprintf(format, args...), Hint: hint}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first signal the command winds down (serve drains its
	// connections; the others stop at their next check and write
	// nothing); a second one kills the process the default way, for a
	// step that runs long before its next check.
	context.AfterFunc(ctx, func() {
		stop()
		fmt.Fprintln(os.Stderr, "triage: interrupted; stopping (interrupt again to quit at once)")
	})
	env := &Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv, IsTerminal: isTerminal(os.Stderr)}
	os.Exit(Main(ctx, os.Args[1:], env))
}

// Main runs the command line args and returns the exit status: 0 on
// success, 2 for usage errors, 1 for anything else (3 for retrain's
// refusal, 130 when ctx was cancelled: an interrupt). Help asked for (-h, --help, help CMD) goes to stdout; usage
// printed because of a mistake goes to stderr.
func Main(ctx context.Context, args []string, env *Env) int {
	if env.Getenv == nil {
		env.Getenv = func(string) string { return "" }
	}
	if env.Stdin == nil {
		env.Stdin = strings.NewReader("")
	}
	// Output that did not reach its file (a full disk, a closed pipe
	// other than SIGPIPE's) fails the command, whichever code wrote it:
	// also version and help, which a script may capture ('triage version
	// --json > F' on a full disk exited 0 with F empty).
	out := &checkedWriter{w: env.Stdout}
	cenv := *env
	cenv.Stdout = out
	lost := func(name string, code int) int {
		if werr := out.Err(); werr != nil {
			fmt.Fprintf(env.Stderr, "triage %s: write standard output: %v\n", name, werr)
			return 1
		}
		return code
	}
	switch {
	case len(args) == 0:
		printUsage(env.Stderr)
		return 2
	case isHelp(args[0]) && len(args) == 1:
		printUsage(out)
		return lost("help", 0)
	case args[0] == "help":
		// help CMD is CMD -h; help version and help help too, which the
		// command table does not hold.
		args = append(args[1:len(args):len(args)], "-h")
		if isHelp(args[0]) {
			printUsage(out)
			return lost("help", 0)
		}
	}
	if args[0] == "version" || args[0] == "--version" {
		return lost("version", runVersion(&cenv, args[1:]))
	}
	cmd, rest, ok := lookup(args)
	if !ok {
		fmt.Fprintf(env.Stderr, "triage: unknown command %q%s (run 'triage help' for the list)\n", args[0], suggest(args[0], topLevel()))
		return 2
	}
	err := cmd.run(ctx, &cenv, rest)
	if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		fmt.Fprintf(env.Stderr, "triage %s: interrupted (no output file was written)\n", cmd.name)
		return exitInterrupted
	}
	if err == nil {
		return lost(cmd.name, 0)
	}
	if errors.Is(err, flag.ErrHelp) {
		return lost(cmd.name, 0)
	}
	// One line: embedded newlines would split a message a script greps.
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	fmt.Fprintf(env.Stderr, "triage %s: %s\n", cmd.name, msg)
	var ue *UsageError
	if errors.As(err, &ue) {
		return 2
	}
	// A command may have its own status for an outcome that is not a
	// failure of the command (retrain's refusal to promote exits 3).
	var ec interface{ ExitCode() int }
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	return 1
}

// isHelp reports whether arg asks for help the way the flag package
// understands it.
func isHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--h", "--help", "help":
		return true
	}
	return false
}

func lookup(args []string) (command, []string, bool) {
	if len(args) >= 2 {
		if c, ok := commands[args[0]+" "+args[1]]; ok {
			return c, args[2:], true
		}
	}
	if c, ok := commands[args[0]]; ok {
		return c, args[1:], true
	}
	return command{}, nil, false
}

// registerGroup adds a command word whose subcommands are registered as
// "name sub": on its own, or with a subcommand it does not know, it lists
// them.
func registerGroup(name, summary string) {
	register(name, summary, func(ctx context.Context, env *Env, args []string) error {
		return runGroup(env, name, args)
	})
}

func runGroup(env *Env, name string, args []string) error {
	subs := subcommands(name)
	hint := fmt.Sprintf("use %s; add -h for its flags", quoteList(name, subs))
	switch {
	case len(args) > 0 && isHelp(args[0]):
		printGroupUsage(env.Stdout, name, subs)
		return flag.ErrHelp
	case len(args) == 0:
		printGroupUsage(env.Stderr, name, subs)
		return usagef(hint, "%s needs a subcommand", name)
	}
	return usagef(hint, "%s subcommand %q is not known%s", name, args[0], suggest(args[0], subs))
}

// subcommands are the second words of the commands under group.
func subcommands(group string) []string {
	var out []string
	for n := range commands {
		if sub, ok := strings.CutPrefix(n, group+" "); ok {
			out = append(out, sub)
		}
	}
	sort.Strings(out)
	return out
}

// quoteList is "'triage G a', 'triage G b' or 'triage G c'".
func quoteList(group string, subs []string) string {
	q := make([]string, len(subs))
	for i, s := range subs {
		q[i] = fmt.Sprintf("'triage %s %s'", group, s)
	}
	if len(q) < 2 {
		return strings.Join(q, "")
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

func printGroupUsage(w io.Writer, group string, subs []string) {
	fmt.Fprintf(w, "usage: triage %s <subcommand> [flags]\n\nsubcommands:\n", group)
	for _, s := range subs {
		fmt.Fprintf(w, "  %-12s %s\n", s, commands[group+" "+s].summary)
	}
	fmt.Fprintf(w, "\nRun 'triage %s <subcommand> -h' for its flags.\n", group)
}

// topLevel are the first words of all commands, for suggestions.
func topLevel() []string {
	seen := map[string]bool{"help": true, "version": true}
	for n := range commands {
		first, _, _ := strings.Cut(n, " ")
		seen[first] = true
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// suggest returns "; did you mean X?" for the known word nearest to word,
// when it is near enough to be a typo, else "".
func suggest(word string, known []string) string {
	if near := suggestpkg.Nearest(word, known); near != "" {
		return fmt.Sprintf("; did you mean %q?", near)
	}
	return ""
}

func printUsage(w io.Writer) {
	var names []string
	for n, c := range commands {
		// A group is listed through its subcommands.
		if len(subcommands(n)) > 0 {
			continue
		}
		names = append(names, c.name)
	}
	sort.Strings(names)
	fmt.Fprintln(w, "usage: triage <command> [flags]\n\ncommands:")
	for _, n := range names {
		fmt.Fprintf(w, "  %-18s %s\n", n, commands[n].summary)
	}
	fmt.Fprintf(w, "  %-18s %s\n", "version", "print the version, commit and Go version (--json: one JSON object)")
	fmt.Fprintln(w, "\nRun 'triage <command> -h' (or 'triage help <command>') for a command's flags.")
	// serve and upstream-sim run until stopped: a signal is how they end,
	// and they exit 0 after draining, which a supervisor must not read
	// as the 130 above.
	fmt.Fprintln(w, "Exit status: 0 success, 1 data or runtime error, 2 usage error, 3 retrain refused the challenger, 130 interrupted (Ctrl-C or SIGTERM; no output file written).")
	fmt.Fprintln(w, "serve and upstream-sim run until stopped: Ctrl-C or SIGTERM drains them and they exit 0.")
}

// buildInfo is what 'triage version' prints, from the build information
// the Go toolchain stamps into the binary: the module version, the commit
// it was built from (a build from a git checkout carries it; unknown with
// -buildvcs=false) and the Go toolchain.
type buildInfo struct {
	Version string `json:"version"`
	Commit  string `json:"commit"`
	VCSTime string `json:"vcs_time,omitempty"`
	// Modified is whether the checkout had uncommitted changes, and
	// absent when the build does not know (no commit stamped): false
	// there read as "built from a clean checkout".
	Modified *bool  `json:"modified,omitempty"`
	Go       string `json:"go"`
	Platform string `json:"platform"`
}

func readBuildInfo() buildInfo {
	b := buildInfo{Version: "(devel)", Commit: "unknown", Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			b.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				b.Commit = s.Value
			case "vcs.time":
				b.VCSTime = s.Value
			case "vcs.modified":
				m := s.Value == "true"
				b.Modified = &m
			}
		}
	}
	return b
}

// runVersion prints the build, as text or (--json) one JSON object for a
// deployment script; any other argument is a usage error, not ignored.
func runVersion(env *Env, args []string) int {
	b := readBuildInfo()
	switch {
	case len(args) == 1 && (args[0] == "--json" || args[0] == "-json"):
		out, _ := json.Marshal(b)
		fmt.Fprintf(env.Stdout, "%s\n", out)
		return 0
	case len(args) > 0 && !isHelp(args[0]):
		// Name the argument at fault: in 'version --json extra' it is
		// extra, not --json.
		bad := args[0]
		if (bad == "--json" || bad == "-json") && len(args) > 1 {
			bad = args[1]
		}
		fmt.Fprintf(env.Stderr, "triage version: unexpected argument %q (usage: triage version [--json])\n", bad)
		return 2
	case len(args) > 0:
		fmt.Fprintln(env.Stdout, "usage: triage version [--json]")
		return 0
	}
	commit := b.Commit
	if b.Modified != nil && *b.Modified && commit != "unknown" {
		commit += " (with uncommitted changes)"
	}
	if b.VCSTime != "" {
		commit += " of " + b.VCSTime
	}
	fmt.Fprintf(env.Stdout, "triage %s\ncommit %s\n%s %s\n", b.Version, commit, b.Go, b.Platform)
	return 0
}

// newFlagSet returns a flag set that reports errors instead of exiting.
// Its usage goes to stdout when the user asked for it (-h) and to stderr
// when printed because of a mistake.
func newFlagSet(env *Env, name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet("triage "+name, flag.ContinueOnError)
	fs.SetOutput(&helpWriter{env: env})
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: triage %s %s\n\nflags:\n", name, usage)
		fs.PrintDefaults()
	}
	return fs
}

// helpWriter is a flag set's output: stderr, or stdout once parseFlags has
// seen that the user asked for help.
type helpWriter struct {
	env  *Env
	help bool
}

func (h *helpWriter) Write(p []byte) (int, error) {
	if h.help {
		return h.env.Stdout.Write(p)
	}
	return h.env.Stderr.Write(p)
}

// parseFlags parses args and turns flag errors into usage errors.
func parseFlags(fs *flag.FlagSet, args []string) error {
	rest, err := parseFlagsRest(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("run with -h for the flags", "unexpected argument %q", rest[0])
	}
	return nil
}

// flagsGiven is the set of flags set on fs's command line, to tell a flag
// the user gave from its default.
func flagsGiven(fs *flag.FlagSet) map[string]bool {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	return given
}

// parseFlagsRest is parseFlags for a command that takes arguments after
// its flags: it returns them.
func parseFlagsRest(fs *flag.FlagSet, args []string) ([]string, error) {
	if hw, ok := fs.Output().(*helpWriter); ok {
		for _, a := range args {
			if a == "--" {
				break
			}
			if isHelp(a) && a != "help" {
				hw.help = true
			}
		}
	}
	if err := parseQuiet(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, &UsageError{Msg: err.Error(), Hint: valueHint(fs, err)}
	}
	// strconv reads "NaN" and "Inf" as numbers, and a NaN slips past every
	// range check written as a comparison (--holdout NaN trained, then
	// failed to save the artifact). No flag of triage means either.
	var bad error
	fs.Visit(func(f *flag.Flag) {
		if g, ok := f.Value.(flag.Getter); ok && bad == nil {
			if v, ok := g.Get().(float64); ok && (math.IsNaN(v) || math.IsInf(v, 0)) {
				bad = usagef("give a finite number", "--%s is %v", f.Name, v)
			}
		}
	})
	if bad != nil {
		return nil, bad
	}
	if err := stdinOnce(fs); err != nil {
		return nil, err
	}
	return fs.Args(), nil
}

// parseQuiet is fs.Parse without the flag package's own copy of its
// error: it prints the message, then the usage, and Main prints the
// returned error again as the command's one line (with a hint), so a
// mistake showed its message twice, the usage between them. The usage is
// kept; the message is left to Main.
func parseQuiet(fs *flag.FlagSet, args []string) error {
	w := fs.Output()
	var buf bytes.Buffer
	fs.SetOutput(&buf)
	err := fs.Parse(args)
	fs.SetOutput(w)
	out := buf.Bytes()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		out = bytes.TrimPrefix(out, []byte(err.Error()+"\n"))
	}
	if len(out) > 0 {
		// As the flag package does, the write's error is not returned:
		// help on stdout goes through Main's checkedWriter, which fails
		// the command, and stderr has nowhere else to say it.
		_, _ = w.Write(out)
	}
	return err
}

// stdinOnce refuses two logs that are both "-": standard input can be
// read once, and the second read found it empty (retrain --data -
// --feedback - merged the log with nothing, and only warned).
func stdinOnce(fs *flag.FlagSet) error {
	var uses []string
	fs.Visit(func(f *flag.Flag) {
		if l, ok := f.Value.(*logList); ok {
			for _, p := range *l {
				if p == "-" {
					uses = append(uses, "--"+f.Name+" -")
				}
			}
		}
	})
	if len(uses) < 2 {
		return nil
	}
	what := strings.Join(uses, " and ")
	if uses[0] == uses[1] && len(uses) == 2 {
		what = uses[0] + " twice"
	}
	return usagef("give one of them as a file: save the stream with tee, or use <(...) for a second one", "%s: standard input can be read once", what)
}

// valueHint says what a flag the flag package could not parse takes: its
// error ends in "parse error" whatever the type, which left '--read-timeout
// 5' (a duration needs its unit) or '--seed -1' (unsigned) unexplained.
func valueHint(fs *flag.FlagSet, err error) string {
	const hint = "run with -h for the flags"
	var f *flag.Flag
	fs.VisitAll(func(g *flag.Flag) {
		// "for flag -NAME: ", or "for -NAME: " for a boolean.
		if msg := err.Error(); strings.Contains(msg, " for flag -"+g.Name+": ") || strings.Contains(msg, " for -"+g.Name+": ") {
			f = g
		}
	})
	if f == nil {
		return hint
	}
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return hint
	}
	switch g.Get().(type) {
	case time.Duration:
		return "give a duration with its unit, e.g. 30s, 500ms or 2m"
	case float64:
		return "give a number, e.g. 0.2"
	case int, int64:
		return "give a whole number"
	case uint, uint64:
		return "give a whole number, 0 or more"
	case bool:
		return "a switch takes no value; write --" + f.Name + " alone, or --" + f.Name + "=false"
	}
	return hint
}

// stringList is a repeatable, comma-separable flag (--data a,b --data c).
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }

func (s *stringList) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*s = append(*s, p)
		}
	}
	return nil
}

// logList is a --data or --feedback flag: logs comma-separated or
// repeated, where a folder stands for the logs in it (its *.jsonl and
// *.jsonl.gz files, in name order), as a folder of daily exports is kept.
// A folder with no log in it, or one that cannot be listed, stays in the
// list as itself: what is in a folder is a data problem, reported by
// checkLogFolders where the logs are opened (exit 1), not a mistake in
// the flag that would print the usage (exit 2).
type logList []string

func (s *logList) String() string { return strings.Join(*s, ",") }

func (s *logList) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		fi, err := os.Stat(p)
		if err != nil || !fi.IsDir() {
			*s = append(*s, p) // a file; reading it reports what is wrong
			continue
		}
		logs := folderLogs(p)
		if len(logs) == 0 {
			*s = append(*s, p) // checkLogFolders says why
			continue
		}
		*s = append(*s, logs...)
	}
	return nil
}

// folderLogs is the logs a folder stands for: its *.jsonl and *.jsonl.gz
// files, in name order.
func folderLogs(dir string) []string {
	var logs []string
	for _, pattern := range []string{"*.jsonl", "*.jsonl.gz"} {
		m, _ := filepath.Glob(filepath.Join(dir, pattern)) // the pattern is well-formed
		logs = append(logs, m...)
	}
	sort.Strings(logs)
	return logs
}

// checkLogFolders refuses a folder among logList paths, which logList
// keeps only when it holds no log or cannot be listed: the error names
// the folder and says which. It runs before the logs are read, so the
// user hears about the folder rather than "is a folder, not a file".
func checkLogFolders(paths []string) error {
	for _, p := range paths {
		if p == "-" {
			continue
		}
		fi, err := os.Stat(p)
		if err != nil || !fi.IsDir() {
			continue // a file; reading it reports what is wrong
		}
		// Glob reads a folder it cannot open as an empty one: said as
		// "holds no log", a folder without read permission sent the user
		// to look for logs that are there.
		if _, err := os.ReadDir(p); err != nil {
			return fmt.Errorf("read folder %s: %w", p, pathonce.Inner(p, err))
		}
		if logs := folderLogs(p); len(logs) > 0 {
			// Logs written into it since the flags were read: they were
			// not part of the command line's expansion.
			return fmt.Errorf("folder %s held no log when the command started; run it again to read its %s", p, count(len(logs), "log"))
		}
		return fmt.Errorf("folder %s holds no log (no *.jsonl or *.jsonl.gz file)", p)
	}
	return nil
}

// exitInterrupted is the status of a command stopped by Ctrl-C or
// SIGTERM: 128 + SIGINT, as a shell reports a process killed by it.
const exitInterrupted = 130

// checkedWriter remembers the first error of the writes through it, so
// Main can fail a command whose output was lost even where the code that
// wrote it did not look (a report printed with fmt.Fprintf).
type checkedWriter struct {
	w   io.Writer
	mu  sync.Mutex
	err error
}

func (c *checkedWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	if err != nil {
		c.mu.Lock()
		if c.err == nil {
			c.err = err
		}
		c.mu.Unlock()
	}
	return n, err
}

// Err is the first write error, or nil.
func (c *checkedWriter) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}
