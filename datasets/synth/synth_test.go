package synth

import (
	"math"
	"reflect"
	"testing"

	"github.com/triage-router/triage/datasets"
)

func TestGenerate(t *testing.T) {
	t.Run("the same seed gives the same log", func(t *testing.T) {
		a, _ := Generate(Options{N: 200, Seed: 7, Latency: true, Confidence: true})
		b, _ := Generate(Options{N: 200, Seed: 7, Latency: true, Confidence: true})
		if !reflect.DeepEqual(a, b) {
			t.Fatal("two logs from seed 7 differ")
		}
	})
	t.Run("every record validates and carries what was asked", func(t *testing.T) {
		recs, truth := Generate(Options{N: 500, Seed: 1, Latency: true, Confidence: true})
		for i, r := range recs {
			if err := r.Validate(datasets.ValidateOptions{}); err != nil {
				t.Fatalf("record %d: %v", i, err)
			}
			f := r.Outcomes[FastModel]
			if f.LatencyMS == nil || f.CostUSD == nil || f.Confidence == nil {
				t.Fatalf("record %d: fast outcome lacks latency, cost or confidence: %+v", i, f)
			}
			if truth[i].PFast > truth[i].PStrong {
				t.Fatalf("record %d: P(fast right) %v above P(strong right) %v", i, truth[i].PFast, truth[i].PStrong)
			}
		}
	})
	t.Run("observed accuracy matches the truth it was drawn from", func(t *testing.T) {
		recs, truth := Generate(Options{N: 20000, Seed: 3})
		var got, want float64
		for i := range recs {
			f, _, _ := recs[i].Scores(FastModel, StrongModel)
			got += f
			want += truth[i].PFast
		}
		n := float64(len(recs))
		// Binomial standard error at n=20000 is about 0.0035; allow 4 of them.
		if d := math.Abs(got/n - want/n); d > 0.014 {
			t.Fatalf("fast accuracy %.4f, truth says %.4f", got/n, want/n)
		}
	})
}
