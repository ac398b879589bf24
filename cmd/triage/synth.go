package main

import (
	"context"
	"fmt"

	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/datasets/synth"
)

func init() {
	register("synth", "generate a synthetic labelled log with known difficulty", runSynth)
}

func runSynth(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "synth", "[--n 2000] [--seed 1] [--latency] [--confidence] [-o FILE]")
	n := fs.Int("n", 2000, "number of records")
	seed := fs.Uint64("seed", 1, "random seed (the same seed gives the same log)")
	lat := fs.Bool("latency", false, "add latency_ms and cost_usd to each outcome")
	conf := fs.Bool("confidence", false, "add the fast tier's confidence (mean token log-probability)")
	out := fs.String("o", "", "write JSONL to FILE (default stdout)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *n <= 0 {
		return usagef("use a positive count", "--n is %d", *n)
	}
	err := writeLogOutput(env, *out, func(write func(*datasets.Record) error) error {
		return synth.Each(synth.Options{N: *n, Seed: *seed, Latency: *lat, Confidence: *conf}, func(rec datasets.Record, _ synth.Truth) error {
			return write(&rec)
		})
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stderr, "triage synth: %d synthetic records (fast %s, strong %s)\n", *n, synth.FastModel, synth.StrongModel)
	return nil
}
