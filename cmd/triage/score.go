package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/models"
	"github.com/triage-router/triage/models/retrain"
)

func init() {
	register("score", "print p_hard and the decision for each record of a log (N tiers: the tier chosen and each tier's predicted score)", runScore)
}

func runScore(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "score", "--model FILE --data F [-o FILE]")
	model := fs.String("model", "", "router artifact")
	out := fs.String("o", "", "write the score lines to FILE, whole or not at all (default stdout)")
	var data logList
	fs.Var(&data, "data", "JSONL log(s) to score; outcomes are not needed; comma-separated or repeated, and a folder stands for its *.jsonl and *.jsonl.gz files")
	skipBad := fs.Bool("skip-bad", false, "skip malformed lines instead of stopping: name the first five on stderr and count them all")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *model == "" || len(data) == 0 {
		return usagef("give --model FILE and --data FILE", "score needs --model and --data")
	}
	if err := checkNotInput(*out, append([]string{*model}, data...)...); err != nil {
		return err
	}
	a, err := models.Load(*model)
	if err != nil {
		return err
	}
	// Redirected stdout kept the lines before an error or an interrupt:
	// a scores file that looked whole and was not. -o publishes all of
	// them or nothing, as the other commands' -o do.
	o, err := openOutput(env, *out)
	if err != nil {
		return err
	}
	defer o.Abort()
	if a.IsMultiTier() {
		return scoreTiers(ctx, env, o, *model, a, data, *skipBad)
	}
	r, err := models.NewRouter(a)
	if err != nil {
		return err
	}
	type line struct {
		ID       string          `json:"id"`
		PHard    float64         `json:"p_hard"`
		Decision models.Decision `json:"decision"`
	}
	return eachScoreLine(ctx, env, o, *model, a, data, *skipBad, func(rec *datasets.Record) any {
		res := r.Route(retrain.RecordInput(rec))
		return line{ID: rec.ID, PHard: res.PHard, Decision: res.Decision}
	})
}

// eachScoreLine writes to o, for every record of the data files, the JSON
// line lineOf makes of it, and publishes o once every line is written.
// Scores are what a user computes figures from, so when the artifact was
// trained on some of the records, stderr says so at the end, as eval does
// (screenTrained; score has no --unseen: it streams, and a user can drop
// the ids). Only the logs the artifact names can hold its training
// records, so only theirs are kept for the check: scoring a large log of
// new traffic keeps nothing.
func eachScoreLine(ctx context.Context, env *Env, o *output, path string, a *models.Artifact, data []string, skipBad bool, lineOf func(rec *datasets.Record) any) error {
	// A log given twice, or two logs sharing ids, would give a request
	// two score lines: refused as eval and curves refuse them.
	ids, err := newLogIDs(data)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(o)
	enc := json.NewEncoder(bw)
	var keys []datasets.Record // id and time of the named logs' records
	var logs readLogs          // where keys came from; total counts every record
	skipped := 0
	scoreOpts := readOptions(env, "score", skipBad)
	scoreOpts.AllowMissingScore = true
	for i, p := range data {
		named := retrain.NamesSource(a, p)
		if named {
			logs.paths = append(logs.paths, p)
			logs.counts = append(logs.counts, 0)
		}
		bad, err := datasets.EachFile(p, scoreOpts, func(rec datasets.Record) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := ids.claim(i, rec.ID); err != nil {
				return err
			}
			logs.total++
			if named {
				keys = append(keys, datasets.Record{ID: rec.ID, TS: rec.TS})
				logs.counts[len(logs.counts)-1]++
			}
			return enc.Encode(lineOf(&rec))
		})
		if err != nil {
			// The lines before the error, each whole: the buffer was
			// handed to stdout in blocks, the last one cut mid-line.
			// When the error is stdout's own write error, Flush returns
			// that same (sticky) error again: joining it would print the
			// message twice on one line.
			if ferr := bw.Flush(); ferr != nil && !errors.Is(err, ferr) {
				return errors.Join(err, ferr)
			}
			return err
		}
		skipped += bad
		if bad > 0 {
			// Scores are what figures are computed from: a line that
			// was dropped must be counted where the user sees it.
			fmt.Fprintf(env.Stderr, "triage score: %s: skipped %s (--skip-bad); %s no score line\n", p, count(bad, "malformed line"), oneOr(bad, "it has", "they have"))
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if logs.total == 0 {
		return checkLoaded(data, "", "", nil, 0, 0, skipped)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := o.Commit(); err != nil {
		return err
	}
	if o.path != "" {
		fmt.Fprintf(env.Stderr, "triage score: %s; written to %s\n", count(logs.total, "record"), o.path)
	}
	_, _, _, err = screenTrained(env, "score", false, []string{path}, []*models.Artifact{a}, keys, logs, nil)
	return err
}

// scoreTiers prints, per record, an N-tier router's choice: the tier,
// its race partner, the decision and every tier's predicted score.
func scoreTiers(ctx context.Context, env *Env, o *output, path string, a *models.Artifact, data []string, skipBad bool) error {
	r, err := models.NewTierRouter(a)
	if err != nil {
		return err
	}
	type line struct {
		ID        string          `json:"id"`
		Tier      int             `json:"tier"`
		Model     string          `json:"model"`
		RaceModel string          `json:"race_model,omitempty"`
		Decision  models.Decision `json:"decision"`
		Predicted []float64       `json:"predicted"`
	}
	return eachScoreLine(ctx, env, o, path, a, data, skipBad, func(rec *datasets.Record) any {
		res := r.Route(retrain.RecordInput(rec))
		return line{ID: rec.ID, Tier: res.Tier, Model: res.Model, RaceModel: res.RaceModel, Decision: res.Decision, Predicted: res.Predicted}
	})
}
