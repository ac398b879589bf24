package main

import (
	"context"
	"flag"
	"fmt"
	"strings"

	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/datasets/synth"
)

func init() {
	register("synth", "generate a synthetic labelled log with known difficulty", runSynth)
}

func runSynth(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "synth", "[--n 2000] [--seed 1] [--scenario topics|speculation] [--latency] [--confidence] [--id-prefix P] [-o FILE]")
	n := fs.Int("n", synth.DefaultN, "number of records")
	seed := fs.Uint64("seed", 1, "random seed (the same seed gives the same log)")
	scenario := fs.String("scenario", string(synth.Topics), "the story behind the log: topics (a prompt's topic and steps set its difficulty; the bundled sample) "+
		"or speculation (the fast tier's confidence also sees what the prompt hides and the fast tier sometimes stalls, so the gate and speculation pay off; add --latency --confidence)")
	lat := fs.Bool("latency", false, "add latency_ms and cost_usd to each outcome")
	conf := fs.Bool("confidence", false, "add the fast tier's confidence (a signal on a mean token log-probability's scale, higher when its answer is right; the speculation scenario's also goes above 0, where a real log-probability cannot)")
	prefix := fs.String("id-prefix", "", "record ids are PREFIX/N (default synth/SEED)")
	out := fs.String("o", "", "write JSONL to FILE (default stdout)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *n <= 0 {
		return usagef("use a positive count", "--n is %d", *n)
	}
	// An empty prefix would silently be the default one.
	prefixGiven := false
	fs.Visit(func(f *flag.Flag) { prefixGiven = prefixGiven || f.Name == "id-prefix" })
	if prefixGiven && strings.TrimSpace(*prefix) == "" {
		return usagef("give a prefix, or leave the flag out for synth/SEED", "--id-prefix is empty")
	}
	sc, err := synth.ParseScenario(*scenario)
	if err != nil {
		return usagef("use --scenario topics or --scenario speculation", "--scenario: %v", err)
	}
	opts := synth.Options{Scenario: sc, N: *n, Seed: *seed, Latency: *lat, Confidence: *conf, IDPrefix: *prefix}
	err = writeLogOutput(ctx, env, *out, func(write func(*datasets.Record) error) error {
		return synth.Each(opts, func(rec datasets.Record, _ synth.Truth) error {
			return write(&rec)
		})
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stderr, "triage synth: %s, scenario %s (fast %s, strong %s)\n", count(*n, "synthetic record"), sc, synth.FastModel, synth.StrongModel)
	// The speculation scenario exists to show what the confidence gate
	// and speculation buy, which a log without latency or confidence
	// cannot: curves then has no latency to trade and no gate to open.
	if sc == synth.Speculation && (!*lat || !*conf) {
		var missing []string
		if !*lat {
			missing = append(missing, "--latency")
		}
		if !*conf {
			missing = append(missing, "--confidence")
		}
		fmt.Fprintf(env.Stderr, "triage synth: note: the speculation scenario shows what the confidence gate and speculation buy only with latency and the fast tier's confidence in the log; add %s\n", strings.Join(missing, " "))
	}
	return nil
}
