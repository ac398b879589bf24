package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/datasets/safefile"
	"github.com/triage-router/triage/internal/pathonce"
	"github.com/triage-router/triage/internal/plural"
	"github.com/triage-router/triage/models"
	"github.com/triage-router/triage/models/report"
)

// output is where a command writes its result: a file that appears whole
// or not at all, or stdout when no path (or "-") is given.
type output struct {
	io.Writer
	f    *safefile.File
	path string // the file's path; "" for stdout
}

func openOutput(env *Env, path string) (*output, error) {
	if path == "" || path == "-" {
		return &output{Writer: env.Stdout}, nil
	}
	if err := checkNotDB(path); err != nil {
		return nil, err
	}
	f, err := safefile.Create(path)
	if err != nil {
		// A missing folder or a file on the path: say which and what to
		// do, not the temporary file's name the create failed on.
		if cerr := checkOutFile(path); cerr != nil {
			return nil, cerr
		}
		return nil, err
	}
	return &output{Writer: f, f: f, path: path}, nil
}

// Commit publishes the file; Abort discards it. Call Abort in a defer and
// Commit on success: Abort after Commit does nothing.
func (o *output) Commit() error {
	if o.f == nil {
		return nil
	}
	return o.f.Commit()
}

func (o *output) Abort() {
	if o.f != nil {
		o.f.Abort()
	}
}

// writeLogOutput streams the records produce hands to its write function
// as JSONL to path (published only if produce and the writes all succeed,
// and ctx was not cancelled: an interrupted command publishes nothing) or
// stdout.
func writeLogOutput(ctx context.Context, env *Env, path string, produce func(write func(*datasets.Record) error) error) error {
	o, err := openOutput(env, path)
	if err != nil {
		return err
	}
	defer o.Abort()
	w := datasets.NewWriter(o)
	write := func(rec *datasets.Record) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return w.Write(rec)
	}
	if err := produce(write); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write log: %w", err)
	}
	return o.Commit()
}

// saveArtifact writes a router to path unless ctx was cancelled: a
// command interrupted while it trained or swept publishes nothing (Main
// reports the interrupt).
func saveArtifact(ctx context.Context, a *models.Artifact, path string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return a.Save(path)
}

// maxSkipsNamed is how many of the lines --skip-bad skips a command names
// on stderr; the count it prints covers the rest.
const maxSkipsNamed = 5

// readOptions are a command's options for reading its logs under
// --skip-bad: the first lines skipped are named on stderr with what is
// wrong ("triage train: --skip-bad skipped log.jsonl:11: malformed JSON
// ..."). With the count alone, a user whose log lost a few lines could
// not find them, nor fix what wrote them, short of running again
// without --skip-bad once per bad line.
func readOptions(env *Env, cmd string, skipBad bool) datasets.ReadOptions {
	opts := datasets.ReadOptions{SkipBad: skipBad, Stdin: env.Stdin}
	if !skipBad {
		return opts
	}
	var (
		mu    sync.Mutex
		named int
	)
	opts.OnSkip = func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if named++; named <= maxSkipsNamed {
			fmt.Fprintf(env.Stderr, "triage %s: --skip-bad skipped %v\n", cmd, err)
		}
		if named == maxSkipsNamed+1 {
			fmt.Fprintf(env.Stderr, "triage %s: --skip-bad skipped more lines; only the first %d are named\n", cmd, maxSkipsNamed)
		}
	}
	return opts
}

// noteSkipped tells stderr how many malformed lines --skip-bad skipped,
// when it skipped any: figures from a log that lost lines must say so.
func noteSkipped(env *Env, cmd string, bad int) {
	if bad > 0 {
		fmt.Fprintf(env.Stderr, "triage %s: skipped %s (--skip-bad)\n", cmd, count(bad, "malformed line"))
	}
}

// count is n and the noun, plural unless n is 1: "1 record", "3 lines",
// "2 entries" (plural.Count, which the importers' summaries share).
func count(n int, noun string) string { return plural.Count(n, noun) }

// countIs is count followed by "is" or "are" as n takes: "1 record is",
// "3 records are".
func countIs(n int, noun string) string {
	return count(n, noun) + " " + oneOr(n, "is", "are")
}

// oneOr is one when n is 1, else many (plural.Agree).
func oneOr(n int, one, many string) string { return plural.Agree(n, one, many) }

// checkOutDir refuses, before any work, an output folder that cannot be
// one: a path that exists and is not a folder, or one below such a path.
// A folder that does not exist yet is fine: it is created at the end. The
// folder that takes the new report as an entry must be writable (a
// read-only disk, a path in /proc): the nearest that exists, or, for a
// report folder that exists, the one it is in, since the new report is
// written beside it and swapped in (report.Write). A probe folder is made
// in it and removed, so that failure too comes before the work, not after
// a long replay.
func checkOutDir(dir string) error {
	if err := report.CheckFolder(dir); err != nil {
		return err
	}
	for p := filepath.Clean(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err == nil {
			if fi.IsDir() {
				if p == filepath.Clean(dir) {
					if real, err := filepath.EvalSymlinks(p); err == nil {
						p = filepath.Dir(real)
					}
				}
				probe, err := os.MkdirTemp(p, ".triage-probe-*")
				if err != nil {
					// The error names the probe, a name the user never gave.
					var pe *fs.PathError
					if errors.As(err, &pe) {
						err = pe.Err
					}
					return fmt.Errorf("-o %s cannot be written: a folder cannot be made in %s: %w", dir, p, err)
				}
				os.Remove(probe)
				return nil
			}
			if p == filepath.Clean(dir) {
				return fmt.Errorf("-o %s is %s, not a folder; the report is a folder (curves.csv, the plots and index.html): give a new or existing folder's path", dir, safefile.KindOf(fi.Mode()))
			}
			return fmt.Errorf("-o %s: %s is %s, not a folder, so the folder cannot be made below it", dir, p, safefile.KindOf(fi.Mode()))
		}
		// ENOTDIR: a path below a file; the loop goes up to name the file.
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
			if p == filepath.Clean(dir) {
				err = pathonce.Inner(p, err)
			}
			return fmt.Errorf("-o %s cannot be looked at: %w", dir, err)
		}
		if parent := filepath.Dir(p); parent == p {
			return nil
		}
	}
}

// checkOutFile tries, before any work, the file a command will save its
// artifact to at the end: train and retrain run for minutes on a large
// log, and "-o" in a missing folder, below a file or on a read-only disk
// should not cost them. It creates and discards the temporary file the
// save would write. A device or a pipe (written in place) is not opened
// here: a pipe's reader would see the probe's close as the end.
//
// "-" is refused: elsewhere it means standard output, but an artifact is
// saved to a file (standard output carries the command's report), so
// 'train -o -' wrote a file named "-" while saying "wrote -".
func checkOutFile(path string) error {
	if path == "" {
		return nil
	}
	if path == "-" {
		return usagef("name a file, e.g. -o router.json; ./- is a file named -", "-o - is standard output, and the router artifact is written to a file (standard output carries the report)")
	}
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() && !fi.IsDir() {
		return nil
	}
	if err := checkNotDB(path); err != nil {
		return err
	}
	dir := filepath.Dir(path)
	switch fi, err := os.Stat(dir); {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("-o %s: the folder %s does not exist; create it first (mkdir -p %s)", path, dir, dir)
	case errors.Is(err, syscall.ENOTDIR), err == nil && !fi.IsDir():
		return fmt.Errorf("-o %s: %s is not a folder (a file is on its path)", path, dir)
	}
	f, err := safefile.Create(path)
	if err != nil {
		return fmt.Errorf("-o %s cannot be written: %w", path, pathonce.Inner(path, err))
	}
	f.Abort()
	return nil
}

// checkNotInput refuses an output path that names one of the command's
// inputs (the same file, by path or by device and inode): the output is
// written whole over it, so 'train --data log.jsonl -o log.jsonl' would
// replace the log with the router, and 'feedback export --db f.db -o f.db'
// the db with its export. Standard output and "-" inputs are not files.
func checkNotInput(out string, inputs ...string) error {
	if out == "" || out == "-" {
		return nil
	}
	for _, in := range inputs {
		if in != "" && in != "-" && sameFile(out, in) {
			return usagef("write to another file", "-o %s is also what this command reads (%s); writing it would replace its input", out, in)
		}
	}
	return nil
}

// checkNotDB refuses an output path that holds a feedback db (a bbolt
// file), or the feedback log beside one (the db's path + "-wal"): no
// command's output is either, and writing it whole over the db loses
// every routed request and feedback in it, over the log the feedback not
// yet applied to the db. checkNotInput catches 'feedback export --db f.db
// -o f.db', but not 'feedback export --from URL -o f.db' naming the db of
// the very server it exports from (which went on writing to the replaced
// file, and then could not start on the export), nor a log or artifact
// given the db's name by a slip.
func checkNotDB(path string) error {
	const hint = "write to another file; a feedback db is never an output (export it with 'triage feedback export')"
	if isBoltFile(path) {
		return usagef(hint, "-o %s is a feedback db (a bbolt file); writing it would replace the db and the traffic it holds", path)
	}
	if db, ok := strings.CutSuffix(path, "-wal"); ok && isBoltFile(db) {
		return usagef(hint, "-o %s is the feedback log of the feedback db %s; writing it would replace the feedback not yet applied to the db", path, db)
	}
	return nil
}

// isBoltFile reports whether path is a regular file that begins as a
// bbolt file does.
func isBoltFile(path string) bool {
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return false
	}
	f, err := os.Open(path)
	if err != nil {
		return false // the write reports it, with its own error
	}
	defer f.Close()
	head := make([]byte, 64)
	n, _ := io.ReadFull(f, head)
	return datasets.IsBoltFile(head[:n])
}

// interruptible runs work on a goroutine of its own and returns its
// error, or ctx's as soon as ctx is cancelled. Reading a log and training
// do not look at ctx: Ctrl-C during them went on to the end of the fit
// (12 to 25 s on RouteLLM MMLU), or for as long as a --data pipe stayed
// open, before the command stopped. Abandoned work goes on until the
// process exits, which follows Main's return; the caller must not read
// what work sets once interruptible has returned ctx's error.
func interruptible(ctx context.Context, work func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- work() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
