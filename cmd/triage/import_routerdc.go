package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/datasets/importers"
)

func init() {
	register("import routerdc", "convert a RouterDC file (a question and a score per model) to a JSONL log", runImportRouterDC)
}

func runImportRouterDC(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "import routerdc", "--file F [--id-prefix P] [--no-meta] [--skip-bad] [-o FILE]")
	file := fs.String("file", "", `RouterDC JSON file: an array (or JSON Lines) of {"question": "...", "scores": {model: score in [0,1]}}; - reads standard input (with --id-prefix); gzip-compressed is read as such`)
	prefix := fs.String("id-prefix", "", "start ids with P, as P/<index> (default: the file name without extension); with --file -, required, and meta.source too")
	noMeta := fs.Bool("no-meta", false, "leave out meta.source (the file name): pooling several files, it would tell the router the task")
	out := fs.String("o", "", "write JSONL to FILE (default stdout)")
	skipBad := fs.Bool("skip-bad", false, "skip malformed elements instead of stopping: name the first five on stderr and count them all (a JSON syntax error still stops the import: no element after it can be found)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *file == "" {
		return usagef("name a RouterDC file, e.g. routerdc-7models/gsm8k-test.json", "--file is required")
	}
	opts := importers.RouterDCOptions{File: *file, IDPrefix: *prefix, NoMeta: *noMeta, BadRows: badRows(env, "import routerdc", *skipBad)}
	source := *file
	if *file == "-" {
		// The ids and meta.source come from the file's name, which
		// standard input has not.
		if *prefix == "" {
			return usagef("name what it holds, e.g. --id-prefix gsm8k-test: the ids start with it and it is meta.source, which a file's name gives otherwise", "--file - needs --id-prefix")
		}
		opts.File, opts.Input, source = "stdin", env.Stdin, "standard input"
	} else if fi, err := os.Stat(*file); err == nil && fi.IsDir() {
		// The shared folder holds thirteen files; a newcomer passes it.
		ex := "gsm8k-test.json"
		if m, _ := filepath.Glob(filepath.Join(*file, "*.json")); len(m) > 0 {
			ex = filepath.Base(m[0])
		}
		return usagef(fmt.Sprintf("import one file at a time, e.g. --file %s; then pass the logs together to --data, comma-separated", filepath.Join(*file, ex)), "--file %s is a directory", *file)
	}
	return writeImport(ctx, env, "import routerdc", source, *out, []string{*file}, func(fn func(datasets.Record) error) (importers.Stats, error) {
		return importers.RouterDC(opts, fn)
	})
}
