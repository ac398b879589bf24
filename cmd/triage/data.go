package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/triage-router/triage/datasets"
	suggestpkg "github.com/triage-router/triage/internal/suggest"
	"github.com/triage-router/triage/models"
	"github.com/triage-router/triage/models/retrain"
)

// labelledSet is a log turned into training examples for a tier pair.
type labelledSet struct {
	examples []models.Example
	// missing counts records without both tiers' scores.
	missing int
	// bad counts lines skipped by --skip-bad.
	bad int
	// seen counts outcomes per model over all records, for error messages.
	seen map[string]int
	// keys are the examples' records cut down to id and time, in the
	// examples' order, and logs where they came from: what screenTrained
	// needs to tell which records a router was trained on.
	keys []datasets.Record
	logs readLogs
}

// loadLabelled reads the files and keeps the records that have both tiers'
// scores. A tier that appears in no record is an error that lists the
// models that do.
func loadLabelled(paths []string, fast, strong string, opts datasets.ReadOptions) (*labelledSet, error) {
	set := &labelledSet{seen: map[string]int{}, logs: readLogs{paths: paths, counts: make([]int, len(paths))}}
	bad, err := eachLogRecord(paths, opts, set.seen, func(i int, rec *datasets.Record) {
		ex, ok := exampleOf(rec, fast, strong)
		if !ok {
			set.missing++
			return
		}
		set.examples = append(set.examples, ex)
		set.keys = append(set.keys, datasets.Record{ID: rec.ID, TS: rec.TS})
		set.logs.counts[i]++
	})
	set.bad = bad
	if err != nil {
		return nil, err
	}
	set.logs.total = len(set.keys)
	if err := checkLoaded(paths, fast, strong, set.seen, len(set.examples), len(set.examples)+set.missing, set.bad); err != nil {
		return nil, err
	}
	return set, nil
}

// eachLogRecord reads the --data logs in order and calls fn with each
// record and the index of its log, after refusing an id that two logs
// share and counting the record's models in seen, if not nil (for the
// error that names the models a log does have). It returns the lines
// --skip-bad skipped.
func eachLogRecord(paths []string, opts datasets.ReadOptions, seen map[string]int, fn func(i int, rec *datasets.Record)) (int, error) {
	ids, err := newLogIDs(paths)
	if err != nil {
		return 0, err
	}
	var skipped int
	for i, p := range paths {
		bad, err := datasets.EachFile(p, opts, func(rec datasets.Record) error {
			if err := ids.claim(i, rec.ID); err != nil {
				return err
			}
			if seen != nil {
				for m := range rec.Outcomes {
					seen[m]++
				}
			}
			fn(i, &rec)
			return nil
		})
		skipped += bad
		if err != nil {
			return skipped, err
		}
	}
	return skipped, nil
}

// logIDs refuses a record id that two of the --data logs share. Within a
// log the reader refuses a repeated id; across logs the record would be
// trained on (or measured) twice in silence: the same log given twice, or
// two feedback exports that overlap.
type logIDs struct {
	paths []string
	file  map[string]int32 // id -> index in paths
}

// newLogIDs returns nil for one log (its reader checks it) and an error for
// a log given twice or a folder that holds none. Every reader of the
// --data logs calls it first.
func newLogIDs(paths []string) (*logIDs, error) {
	if err := checkLogFolders(paths); err != nil {
		return nil, err
	}
	for i := range paths {
		for j := range i {
			if sameFile(paths[i], paths[j]) {
				return nil, &UsageError{Msg: fmt.Sprintf("--data gives %s twice", paths[i]), Hint: "give each log once"}
			}
		}
	}
	if len(paths) < 2 {
		return nil, nil
	}
	return &logIDs{paths: paths, file: map[string]int32{}}, nil
}

// claim records that id is in paths[i]; an id already in another log is
// an error naming both.
func (x *logIDs) claim(i int, id string) error {
	if x == nil {
		return nil
	}
	if j, ok := x.file[id]; ok && int(j) != i {
		a, b := x.paths[i], x.paths[int(j)]
		if a == b+".gz" || b == a+".gz" {
			// gzip -k, or a compressed copy made to save space, left
			// beside the log in a folder given to --data, which stands
			// for both: the overlap guess below sent users after exports.
			return fmt.Errorf("id %q of %s is also in %s: a record belongs in one log only (one looks like the other compressed, and a folder stands for its *.jsonl and *.jsonl.gz files alike: keep one of them)", id, a, b)
		}
		return fmt.Errorf("id %q of %s is also in %s: a record belongs in one log only (two feedback exports that overlap? 'feedback export --since' takes only the newer traffic)", id, a, b)
	}
	x.file[id] = int32(i)
	return nil
}

// sameFile reports whether two paths name one file (by device and inode,
// so ./a.jsonl and a symbolic link to it count); "-" is standard input.
func sameFile(a, b string) bool {
	if filepath.Clean(a) == filepath.Clean(b) {
		return true
	}
	fa, errA := os.Stat(a)
	fb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(fa, fb)
}

// peekRecords is how many records peekModels reads: enough to meet every
// model of a log whose records name the same few, quick on a large one.
const peekRecords = 1000

// errPeeked stops peekModels' read once it has seen enough.
var errPeeked = errors.New("peeked")

// peekModels names the models in the outcomes of the first records of the
// log at path, for the hint of a command that was not told its tiers:
// "; the models in log.jsonl, its first 1000 records: a (1000), b (1000)". It is
// empty when the log cannot be read; the command's own read reports why.
// For standard input ("-") it reads stdin: the command stops at its usage
// error, so nothing else reads it (train --data - without --fast and
// --strong named no model, and the user had to save the stream to a
// file to learn them), but not from a terminal, where it would wait for
// a log nobody is typing before saying what was wrong.
func peekModels(path string, stdin io.Reader) string {
	name := path
	if path == "-" {
		if f, ok := stdin.(*os.File); stdin == nil || ok && isTerminal(f) {
			return ""
		}
		name = "standard input"
	}
	seen := map[string]int{}
	n := 0
	_, err := datasets.EachFile(path, datasets.ReadOptions{SkipBad: true, Stdin: stdin}, func(rec datasets.Record) error {
		for m := range rec.Outcomes {
			seen[m]++
		}
		if n++; n == peekRecords {
			return errPeeked
		}
		return nil
	})
	if (err != nil && !errors.Is(err, errPeeked)) || n == 0 {
		return ""
	}
	what := "its " + count(n, "record")
	switch n {
	case 1:
		what = "its one record"
	case peekRecords:
		what = "its first " + count(n, "record")
	}
	return fmt.Sprintf("; the models in %s, %s: %s", name, what, datasets.ModelList(seen))
}

// exampleOf is rec as a training example of the (fast, strong) pair, with
// the fast tier's confidence copied; false when either score is missing.
func exampleOf(rec *datasets.Record, fast, strong string) (models.Example, bool) {
	f, s, ok := rec.Scores(fast, strong)
	if !ok {
		return models.Example{}, false
	}
	ex := models.Example{ID: rec.ID, Input: retrain.RecordInput(rec), Fast: f, Strong: s, TS: rec.TS}
	if o := rec.Outcomes[fast]; o.Confidence != nil {
		c := *o.Confidence
		ex.Confidence = &c
	}
	return ex, true
}

// checkLoaded returns the error for a log with no records (records is
// how many were read, bad how many lines --skip-bad skipped), a tier that
// appears in no record (listing the models that do, with their counts in
// seen) or no record with both tiers' scores (n is how many have them).
func checkLoaded(paths []string, fast, strong string, seen map[string]int, n, records, bad int) error {
	if records == 0 {
		files := strings.Join(paths, ",")
		if bad > 0 {
			return fmt.Errorf("%s holds no valid record: all %d non-blank lines were bad and skipped", files, bad)
		}
		if len(paths) == 1 {
			return fmt.Errorf("%s is empty: it holds no records (a log is JSON Lines, one record per line)", files)
		}
		return fmt.Errorf("%s are empty: they hold no records (a log is JSON Lines, one record per line)", files)
	}
	for _, m := range []struct{ role, name string }{{"fast", fast}, {"strong", strong}} {
		if seen[m.name] == 0 {
			return &absentTierError{role: m.role, name: m.name, files: strings.Join(paths, ","), seen: seen}
		}
	}
	if n == 0 {
		return noPairsError(strings.Join(paths, ","), fast, strong)
	}
	return nil
}

// noPairsError is the error for logs in which no record has both tiers'
// scores. A production log usually holds one model's outcome per request,
// and the bare "no record has scores for both" left its owner with no way
// on: it says where pairs come from.
func noPairsError(files, fast, strong string) error {
	return fmt.Errorf("no record of %s has scores for both %q and %q: a router is trained and measured on requests that both tiers answered, each answer scored; "+
		"score a sample of these prompts on the other tier too (send them to it and grade its answers), or collect pairs in production, "+
		"where speculated and explored requests run both tiers and feedback scores them (docs/loop.md)", files, fast, strong)
}

// absentTierError is a tier no record of the log names. Its message
// names the flag that gave the tier, or with ofRouter the router whose
// tier it is (eval --model takes no --fast or --strong); an N-tier
// router's tier has no role.
type absentTierError struct {
	role, name, files string
	seen              map[string]int
	ofRouter          bool
}

func (e *absentTierError) Error() string {
	who := "--" + e.role + " model"
	switch {
	case e.ofRouter && e.role == "": // one of an N-tier router's tiers
		who = "the router's tier"
	case e.ofRouter:
		who = "the router's " + e.role + " tier"
	}
	known := make([]string, 0, len(e.seen))
	for m := range e.seen {
		known = append(known, m)
	}
	sort.Strings(known) // Model's answer must not depend on map order
	hint := ""
	if near := suggestpkg.Model(e.name, known); near != "" {
		hint = fmt.Sprintf("; did you mean %q?", near)
	}
	return fmt.Sprintf("%s %q appears in no record of %s%s; models that do: %s", who, e.name, e.files, hint, datasets.ModelList(e.seen))
}

// assignFolds sets each example's fold from a hash of its id, so the same
// id always lands in the same fold for a seed.
func assignFolds(ex []models.Example, seed uint64, k int) {
	for i := range ex {
		ex[i].Fold = datasets.Fold(ex[i].ID, seed, k)
	}
}

func scoresOf(ex []models.Example, label datasets.Label) (y, weak, strong []float64) {
	y = make([]float64, len(ex))
	weak = make([]float64, len(ex))
	strong = make([]float64, len(ex))
	for i, e := range ex {
		weak[i], strong[i] = e.Fast, e.Strong
		y[i] = label.Of(e.Fast, e.Strong)
	}
	return y, weak, strong
}

// designSet is a log streamed into a training design: the training
// examples as feature rows, and the held-out ones whole (they are routed
// from their inputs to measure the router).
type designSet struct {
	train *models.Design
	held  []models.Example
	// missing counts records without both tiers' scores.
	missing int
	// bad counts lines skipped by --skip-bad.
	bad int
}

// loadedRecord is what a decoding goroutine makes of one record for
// loadDesign.
type loadedRecord struct {
	ex   models.Example
	row  models.Row // the features of a training example
	held bool
	// hasFast and hasStrong say whether the record has an outcome of each
	// tier; others lists its other models, to name them in errors.
	hasFast, hasStrong bool
	others             []string
	both               bool // both tiers' scores are present
	id                 string
}

// loadDesign reads the files like loadLabelled, but keeps only what
// training needs: each record is decoded, split (holdout by id hash, then
// the CV fold) and, when it trains, turned into its feature row on one of
// GOMAXPROCS goroutines, and the prompts of the training examples are not
// kept. The design's rows are in file order, so the result is the same as
// training on loadLabelled's examples split by datasets.InHoldout and
// given folds by assignFolds (TestTrainStreamsTheSameRouter).
//
// prog, when not nil, is told the MiB read so far out of the files' total.
func loadDesign(paths []string, tf trainFlags, holdout float64, opts datasets.ReadOptions, prog func(step string, done, total int)) (*designSet, error) {
	spec, err := tf.spec()
	if err != nil {
		return nil, err
	}
	d, err := models.NewDesign(spec)
	if err != nil {
		return nil, err
	}
	set := &designSet{train: d}
	// The log's size, to reserve the design's storage once from the first
	// rows' share of it; 0 when a path is not a regular file, or is
	// compressed (the reader's offsets count decompressed bytes).
	var total int64
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil || !fi.Mode().IsRegular() || datasets.IsCompressed(p) {
			total = 0
			break
		}
		total += fi.Size()
	}
	seen := map[string]int{}
	var before int64 // bytes of the files done
	newWork := func() func(*datasets.Record) loadedRecord {
		rx, err := models.NewRowExtractor(spec)
		if err != nil {
			panic(err) // spec is checked above
		}
		return func(rec *datasets.Record) loadedRecord {
			var lr loadedRecord
			for m := range rec.Outcomes {
				switch m {
				case tf.fast:
					lr.hasFast = true
				case tf.strong:
					lr.hasStrong = true
				default:
					lr.others = append(lr.others, m)
				}
			}
			lr.id = rec.ID
			if lr.ex, lr.both = exampleOf(rec, tf.fast, tf.strong); !lr.both {
				return lr
			}
			if holdout > 0 && datasets.InHoldout(rec.ID, tf.seed, holdout) {
				lr.held = true
				return lr
			}
			lr.ex.Fold = datasets.Fold(rec.ID, tf.seed+1, tf.folds)
			lr.row = rx.Extract(lr.ex.Input)
			return lr
		}
	}
	ids, err := newLogIDs(paths)
	if err != nil {
		return nil, err
	}
	for i, p := range paths {
		bad, err := datasets.EachFileParallel(p, opts, 0, newWork, func(pos datasets.Position, lr loadedRecord) error {
			if err := ids.claim(i, lr.id); err != nil {
				return err
			}
			if lr.hasFast {
				seen[tf.fast]++
			}
			if lr.hasStrong {
				seen[tf.strong]++
			}
			for _, m := range lr.others {
				seen[m]++
			}
			if prog != nil && total > 0 && pos.Line%4096 == 0 {
				prog("reading the log (MiB)", int((before+pos.End)>>20), int(total>>20))
			}
			switch {
			case !lr.both:
				set.missing++
			case lr.held:
				set.held = append(set.held, lr.ex)
			default:
				set.train.AddRow(lr.row, &lr.ex)
				if set.train.Len() == models.DesignSample && total > 0 {
					set.train.Expect(int(int64(models.DesignSample) * total / max(1, before+pos.End)))
				}
			}
			return nil
		})
		set.bad += bad
		if err != nil {
			return nil, err
		}
		if fi, err := os.Stat(p); err == nil {
			before += fi.Size()
		}
	}
	n := set.train.Len() + len(set.held)
	if err := checkLoaded(paths, tf.fast, tf.strong, seen, n, n+set.missing, set.bad); err != nil {
		return nil, err
	}
	return set, nil
}
