package main

import (
	"bufio"
	"context"
	"fmt"
	"sort"
	"strconv"

	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/features"
	"github.com/triage-router/triage/models/retrain"
)

func init() {
	register("export-libsvm", "write feature vectors and labels in libsvm format", runExportLibsvm)
}

func runExportLibsvm(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "export-libsvm", "--data F --fast M --strong M [--label ...] [--word-ngrams MIN,MAX] [--char-ngrams MIN,MAX] [--hash-bits N] -o FILE")
	var tf trainFlags
	// The log and the feature recipe; the fit's flags (scorer, l2, folds,
	// tiers, ...) would do nothing here, so they are not taken.
	tf.registerLog(fs)
	tf.registerFeatures(fs)
	out := fs.String("o", "", "write libsvm lines to FILE (default stdout); values are the extractor's, before IDF scaling")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	label, err := tf.check("export-libsvm", env.Stdin)
	if err != nil {
		return err
	}
	spec, err := tf.spec()
	if err != nil {
		return err
	}
	ext, err := features.NewExtractor(spec)
	if err != nil {
		return err
	}
	if err := checkNotInput(*out, tf.data...); err != nil {
		return err
	}
	if err := checkLogFolders(tf.data); err != nil {
		return err
	}
	o, err := openOutput(env, *out)
	if err != nil {
		return err
	}
	defer o.Abort()
	bw := bufio.NewWriterSize(o, 1<<20)
	var (
		v            features.Vector
		line         []byte
		n, miss, bad int
		seen         = map[string]int{} // each model's records, for the error naming them
		merged       = map[int32]float64{}
		keys         []int32
	)
	for _, path := range tf.data {
		skipped, err := datasets.EachFile(path, readOptions(env, "export-libsvm", tf.skipBad), func(rec datasets.Record) error {
			// An interrupt stops the export, which publishes nothing.
			if err := ctx.Err(); err != nil {
				return err
			}
			for m := range rec.Outcomes {
				seen[m]++
			}
			f, s, ok := rec.Scores(tf.fast, tf.strong)
			if !ok {
				miss++
				return nil
			}
			ext.Extract(&v, retrain.RecordInput(&rec))
			// libsvm wants each index once, ascending and 1-based; the
			// extractor may repeat an index, so sum repeats first.
			clear(merged)
			keys = keys[:0]
			for i, j := range v.Idx {
				if _, seen := merged[j]; !seen {
					keys = append(keys, j)
				}
				merged[j] += v.Val[i]
			}
			sort.Slice(keys, func(a, b int) bool { return keys[a] < keys[b] })
			line = line[:0]
			// A float: the gain label is a soft target in [0,1], which
			// an integer would cut to 0 (hard labels print as 0 and 1).
			line = strconv.AppendFloat(line, label.Of(f, s), 'g', -1, 64)
			for _, j := range keys {
				line = append(line, ' ')
				line = strconv.AppendInt(line, int64(j)+1, 10)
				line = append(line, ':')
				line = strconv.AppendFloat(line, merged[j], 'g', -1, 64)
			}
			line = append(line, '\n')
			n++
			_, err := bw.Write(line)
			return err
		})
		if err != nil {
			return err
		}
		bad += skipped
	}
	if n == 0 {
		// An empty file of features would pass for a log's export: so
		// would one of a log whose records all lack a tier, as they do
		// when --fast or --strong is misspelt, which wrote 0 rows and
		// exited 0 where train names the tier and the log's models.
		return checkLoaded(tf.data, tf.fast, tf.strong, seen, 0, n+miss, bad)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write libsvm: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := o.Commit(); err != nil {
		return err
	}
	fmt.Fprintf(env.Stderr, "triage export-libsvm: %s (%s), %s skipped without both tiers' scores, %s skipped\n", count(n, "row"), count(spec.Dim(), "feature"), count(miss, "record"), count(bad, "malformed line"))
	return nil
}
