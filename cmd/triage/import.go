package main

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/datasets/importers"
)

func init() {
	registerGroup("import", "convert a published dataset to a JSONL log: import routellm | import wide-csv | import routerdc")
	register("import routellm", "convert RouteLLM's MMLU, GSM8K or MT-Bench eval files to a JSONL log", runImportRouteLLM)
	register("import wide-csv", "convert a CSV with one score column per model to a JSONL log", runImportWideCSV)
}

func runImportRouteLLM(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "import routellm", "--bench mmlu|gsm8k|mt-bench --dir DIR [--exclude-contaminated FILE] [--skip-bad] [-o FILE]")
	bench := fs.String("bench", "", "benchmark: mmlu, gsm8k or mt-bench")
	dir := fs.String("dir", "", "RouteLLM's evals folder (holding mmlu/, gsm8k_responses.csv and mt_bench/)")
	contaminated := fs.String("exclude-contaminated", "", "drop the prompts listed in this RouteLLM contamination file (contaminated/<bench>.jsonl); - reads standard input")
	out := fs.String("o", "", "write JSONL to FILE (default stdout)")
	skipBad := fs.Bool("skip-bad", false, "skip malformed rows of the CSVs and lines of MT-Bench's files instead of stopping: name the first five on stderr and count them all (the contamination list stays strict)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	// MMLU, GSM8K and RouteLLM's own folder name mt_bench are what people type.
	*bench = strings.ReplaceAll(strings.ToLower(*bench), "_", "-")
	switch *bench {
	case importers.BenchMMLU, importers.BenchGSM8K, importers.BenchMTBench:
	case "":
		return usagef("e.g. --bench mmlu", "--bench is required")
	default:
		return usagef("want mmlu, gsm8k or mt-bench", "--bench %q is not known", *bench)
	}
	if *dir == "" {
		return usagef("point it at RouteLLM's evals folder", "--dir is required")
	}
	opts := importers.RouteLLMOptions{Bench: *bench, Dir: *dir, ExcludeContaminated: *contaminated, BadRows: badRows(env, "import routellm", *skipBad)}
	if *contaminated == "-" {
		opts.ExcludeContaminated, opts.Contaminated = "stdin", env.Stdin
	}
	// What the import reads: -o must be none of it.
	inputs := []string{filepath.Join(*dir, "gsm8k_responses.csv"), *contaminated}
	for _, pattern := range []string{filepath.Join(*dir, "mmlu", "*"), filepath.Join(*dir, "mt_bench", "*")} {
		m, _ := filepath.Glob(pattern) // the pattern is well-formed
		inputs = append(inputs, m...)
	}
	return writeImport(ctx, env, "import routellm", *bench+" in "+*dir, *out, inputs, func(fn func(datasets.Record) error) (importers.Stats, error) {
		return importers.RouteLLM(opts, fn)
	})
}

func runImportWideCSV(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "import wide-csv", "--file F --prompt-col C [--id-col C] [--score-scale S] [--models m1,m2,...] [--delimiter tab] [--skip-bad] [-o FILE]")
	file := fs.String("file", "", "CSV file with one row per prompt and one score column per model; - reads standard input; gzip-compressed is read as such")
	promptCol := fs.String("prompt-col", "", "column holding the prompt text")
	idCol := fs.String("id-col", "", "column holding a unique id (default <file name>/<row>, stdin/<row> for --file -)")
	scale := fs.Float64("score-scale", 1, "divide scores by this, e.g. 10 for 1-10 judge grades")
	var modelsFlag stringList
	fs.Var(&modelsFlag, "models", "score columns to import, comma-separated (default: every column but the prompt and id columns, the columns category, subject, source, eval_name, tenant, language, task and dataset, which go into meta, and id-like or answer columns: question_id, sample_id, index, reference, answer, ...)")
	delim := fs.String("delimiter", ",", "the field separator: a single character, or tab for a tab-separated file")
	out := fs.String("o", "", "write JSONL to FILE (default stdout)")
	skipBad := fs.Bool("skip-bad", false, "skip malformed rows instead of stopping: name the first five on stderr and count them all")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *file == "" {
		return usagef("name the CSV to import", "--file is required")
	}
	comma, ok := parseDelimiter(*delim)
	if !ok {
		return usagef("use a single character such as ';', or tab", "--delimiter is %q", *delim)
	}
	if *promptCol == "" {
		return usagef("name the column holding the prompt text", "--prompt-col is required")
	}
	if !(*scale > 0) || math.IsInf(*scale, 0) {
		return usagef("e.g. --score-scale 10 for grades on 1-10", "--score-scale is %v, want a positive number", *scale)
	}
	opts := importers.WideCSVOptions{File: *file, PromptCol: *promptCol, IDCol: *idCol, ScoreScale: *scale, Models: modelsFlag, Delimiter: comma, BadRows: badRows(env, "import wide-csv", *skipBad)}
	source := *file
	if *file == "-" {
		// As Unix tools take it (read as a file named "-" it had said
		// "open -: no such file"); "stdin" names it in errors and ids.
		opts.File, opts.Input, source = "stdin", env.Stdin, "standard input"
	}
	return writeImport(ctx, env, "import wide-csv", source, *out, []string{*file}, func(fn func(datasets.Record) error) (importers.Stats, error) {
		return importers.WideCSV(opts, fn)
	})
}

// writeImport streams an import to -o (published only if the whole import
// succeeds) or stdout, and prints a one-line summary to stderr. An import
// of no records, or of records without a score, fails: source names what
// it read.
func writeImport(ctx context.Context, env *Env, name, source, path string, inputs []string, run func(func(datasets.Record) error) (importers.Stats, error)) error {
	if err := checkNotInput(path, inputs...); err != nil {
		return err
	}
	var st importers.Stats
	err := writeLogOutput(ctx, env, path, func(write func(*datasets.Record) error) (err error) {
		st, err = run(func(rec datasets.Record) error { return write(&rec) })
		if err != nil {
			return err
		}
		// An import of nothing (a CSV with its header only, an empty
		// array, an empty judgements file) published an empty log, or
		// records without one score, and exited 0.
		scores := 0
		for _, n := range st.Outcomes {
			scores += n
		}
		switch {
		case st.Records == 0 && st.Contaminated > 0:
			return fmt.Errorf("%s: all %s are contaminated (%s); nothing was written", source, count(st.Contaminated, "record"), st)
		case st.Records == 0:
			return fmt.Errorf("%s holds no records to import; nothing was written: is it the whole file?", source)
		case scores == 0:
			return fmt.Errorf("%s gave %s but not one score; nothing was written: is the file of scores whole?", source, count(st.Records, "record"))
		}
		return nil
	})
	if err != nil {
		return err
	}
	dest := "stdout"
	if path != "" && path != "-" {
		dest = path
	}
	fmt.Fprintf(env.Stderr, "triage %s: %s; written to %s\n", name, st, dest)
	return nil
}

// badRows is an importer's --skip-bad: the rows it skips are named on
// stderr as readOptions names a log's lines, in the same words.
func badRows(env *Env, cmd string, skipBad bool) importers.BadRows {
	ro := readOptions(env, cmd, skipBad)
	return importers.BadRows{SkipBad: ro.SkipBad, OnSkip: ro.OnSkip}
}

// parseDelimiter reads --delimiter: "tab" (or "\t" as typed in a shell)
// is a tab, anything else must be one character that can separate CSV
// fields.
func parseDelimiter(s string) (rune, bool) {
	switch s {
	case "tab", `\t`, "\t":
		return '\t', true
	}
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 || n != len(s) || r == utf8.RuneError || r == '"' || r == '\r' || r == '\n' {
		return 0, false
	}
	return r, true
}
