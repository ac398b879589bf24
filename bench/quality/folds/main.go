// Command folds splits a JSONL log into K cross-validation folds for the
// quality suite (bench/quality/run.sh), by datasets.Fold(id, seed, K): the
// id hash `triage eval --cv` uses, so a record lands in the same fold for
// Triage, the scikit-learn baseline and any later run. It writes, into DIR:
//
//	train_<k>.jsonl  every record not in fold k (what `triage train` gets)
//	test_<k>.jsonl   the records of fold k (what `triage score` gets)
//	folds.tsv        "id<TAB>fold", one line per record in log order (for baseline.py)
//	means.tsv        "model<TAB>outcomes<TAB>mean score", by model name (to pick tier pairs)
//
// DIR appears whole or not at all: the files are written into a sibling
// folder that is renamed to DIR at the end, so a run interrupted half way
// leaves no DIR that a cache check would take for a finished one.
//
//	folds -log LOG -dir DIR [-k 5] [-seed 1]
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"github.com/triage-router/triage/datasets"
)

func main() {
	log := flag.String("log", "", "JSONL log to split")
	dir := flag.String("dir", "", "folder to write the folds into (replaced if it exists)")
	k := flag.Int("k", 5, "number of folds")
	seed := flag.Uint64("seed", 1, "fold seed (triage eval --cv uses 1)")
	flag.Parse()
	if *log == "" || *dir == "" || *k < 2 || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: folds -log LOG -dir DIR [-k 5] [-seed 1]; k must be at least 2")
		os.Exit(2)
	}
	counts, err := split(*log, *dir, *k, *seed)
	if err != nil {
		fmt.Fprintln(os.Stderr, "folds:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "folds: %s: %v records per fold; written to %s\n", *log, counts, *dir)
}

// outFile is one buffered output file.
type outFile struct {
	f *os.File
	w *bufio.Writer
}

func create(path string) (*outFile, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	return &outFile{f: f, w: bufio.NewWriterSize(f, 64<<10)}, nil
}

func (o *outFile) close() error {
	return errors.Join(o.w.Flush(), o.f.Close())
}

// split writes the folds of log into dir and returns the records per fold.
func split(log, dir string, k int, seed uint64) ([]int, error) {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, fmt.Errorf("make work folder: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), filepath.Base(dir)+".partial-")
	if err != nil {
		return nil, fmt.Errorf("make work folder: %w", err)
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	var files []*outFile
	closeAll := func() error {
		var errs []error
		for _, f := range files {
			errs = append(errs, f.close())
		}
		files = nil
		return errors.Join(errs...)
	}
	defer closeAll()
	open := func(name string) (*datasets.Writer, *outFile, error) {
		f, err := create(filepath.Join(tmp, name))
		if err != nil {
			return nil, nil, err
		}
		files = append(files, f)
		return datasets.NewWriter(f.w), f, nil
	}
	train := make([]*datasets.Writer, k)
	test := make([]*datasets.Writer, k)
	for i := range k {
		if train[i], _, err = open("train_" + strconv.Itoa(i) + ".jsonl"); err != nil {
			return nil, err
		}
		if test[i], _, err = open("test_" + strconv.Itoa(i) + ".jsonl"); err != nil {
			return nil, err
		}
	}
	_, index, err := open("folds.tsv")
	if err != nil {
		return nil, err
	}
	counts := make([]int, k)
	sums := map[string]float64{}
	seen := map[string]int{}
	// ReadOptions{} rejects a bad line and a repeated id, naming the line.
	_, err = datasets.EachFile(log, datasets.ReadOptions{}, func(rec datasets.Record) error {
		f := datasets.Fold(rec.ID, seed, k)
		counts[f]++
		if err := test[f].Write(&rec); err != nil {
			return err
		}
		for j := range k {
			if j != f {
				if err := train[j].Write(&rec); err != nil {
					return err
				}
			}
		}
		if _, err := fmt.Fprintf(index.w, "%s\t%d\n", rec.ID, f); err != nil {
			return err
		}
		for m, o := range rec.Outcomes {
			sums[m] += *o.Score
			seen[m]++
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, w := range append(train, test...) {
		if err := w.Flush(); err != nil {
			return nil, err
		}
	}
	if err := writeMeans(filepath.Join(tmp, "means.tsv"), sums, seen); err != nil {
		return nil, err
	}
	if err := closeAll(); err != nil {
		return nil, fmt.Errorf("write folds: %w", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("replace %s: %w", dir, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return nil, fmt.Errorf("publish folds: %w", err)
	}
	return counts, nil
}

func writeMeans(path string, sums map[string]float64, seen map[string]int) error {
	models := make([]string, 0, len(sums))
	for m := range sums {
		models = append(models, m)
	}
	sort.Strings(models)
	f, err := create(path)
	if err != nil {
		return err
	}
	for _, m := range models {
		fmt.Fprintf(f.w, "%s\t%d\t%.17g\n", m, seen[m], sums[m]/float64(seen[m]))
	}
	return f.close()
}
