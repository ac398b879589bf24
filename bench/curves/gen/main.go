// Command gen writes the synthetic latency and confidence log of
// bench/curves/synth as JSONL.
//
//	go run ./bench/curves/gen -n 20000 -seed 1 -o synth.jsonl
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"

	"github.com/triage-router/triage/bench/curves/synth"
	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/datasets/safefile"
)

func main() {
	n := flag.Int("n", 20000, "number of records")
	seed := flag.Uint64("seed", 1, "random seed")
	prefix := flag.String("prefix", "", "id prefix (default synth-latency); use different prefixes for independent logs")
	out := flag.String("o", "", "output JSONL file")
	flag.Parse()
	if *out == "" || *n <= 0 {
		fmt.Fprintln(os.Stderr, "usage: gen -n N -seed S -o FILE")
		os.Exit(2)
	}
	if err := write(*out, synth.Generate(synth.Options{N: *n, Seed: *seed, IDPrefix: *prefix})); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func write(path string, recs []datasets.Record) error {
	f, err := safefile.Create(path)
	if err != nil {
		return err
	}
	defer f.Abort()
	bw := bufio.NewWriter(f)
	w := datasets.NewWriter(bw)
	for i := range recs {
		if err := w.Write(&recs[i]); err != nil {
			return err
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return f.Commit()
}
