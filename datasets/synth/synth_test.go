package synth

import (
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/triage-router/triage/datasets"
)

func TestGenerate(t *testing.T) {
	for _, sc := range Scenarios {
		t.Run("under "+string(sc)+" the same seed gives the same log", func(t *testing.T) {
			a, _ := Generate(Options{Scenario: sc, N: 200, Seed: 7, Latency: true, Confidence: true})
			b, _ := Generate(Options{Scenario: sc, N: 200, Seed: 7, Latency: true, Confidence: true})
			if !reflect.DeepEqual(a, b) {
				t.Fatal("two logs from seed 7 differ")
			}
		})
		t.Run("under "+string(sc)+" every record validates and carries what was asked", func(t *testing.T) {
			recs, truth := Generate(Options{Scenario: sc, N: 500, Seed: 1, Latency: true, Confidence: true})
			if len(recs) != 500 || len(truth) != 500 {
				t.Fatalf("got %d records and %d truths, want 500", len(recs), len(truth))
			}
			for i, r := range recs {
				if err := r.Validate(datasets.ValidateOptions{}); err != nil {
					t.Fatalf("record %d: %v", i, err)
				}
				f, s := r.Outcomes[FastModel], r.Outcomes[StrongModel]
				if f.LatencyMS == nil || f.CostUSD == nil || f.Confidence == nil || s.LatencyMS == nil || s.CostUSD == nil {
					t.Fatalf("record %d: outcomes lack latency, cost or confidence: fast %+v, strong %+v", i, f, s)
				}
				if s.Confidence != nil {
					t.Fatalf("record %d: the strong tier has a confidence", i)
				}
				if sc == Topics && truth[i].PFast > truth[i].PStrong {
					t.Fatalf("record %d: P(fast right) %v above P(strong right) %v", i, truth[i].PFast, truth[i].PStrong)
				}
			}
		})
		t.Run("under "+string(sc)+" observed accuracy matches the truth it was drawn from", func(t *testing.T) {
			recs, truth := Generate(Options{Scenario: sc, N: 20000, Seed: 3})
			var gotF, wantF, gotS, wantS float64
			for i := range recs {
				f, s, _ := recs[i].Scores(FastModel, StrongModel)
				gotF += f
				gotS += s
				wantF += truth[i].PFast
				wantS += truth[i].PStrong
			}
			n := float64(len(recs))
			// Binomial standard error at n=20000 is at most 0.0035; allow 4 of them.
			if d := math.Abs(gotF/n - wantF/n); d > 0.014 {
				t.Errorf("fast accuracy %.4f, truth says %.4f", gotF/n, wantF/n)
			}
			if d := math.Abs(gotS/n - wantS/n); d > 0.014 {
				t.Errorf("strong accuracy %.4f, truth says %.4f", gotS/n, wantS/n)
			}
		})
	}
	t.Run("ids are the prefix and the index, synth/SEED by default", func(t *testing.T) {
		for _, c := range []struct {
			opts Options
			want []string
		}{
			{Options{N: 2, Seed: 4}, []string{"synth/4/000000", "synth/4/000001"}},
			{Options{N: 2, Seed: 4, IDPrefix: "train"}, []string{"train/000000", "train/000001"}},
			{Options{Scenario: Speculation, N: 2, Seed: 4}, []string{"synth/4/0", "synth/4/1"}},
			{Options{Scenario: Speculation, N: 2, Seed: 4, IDPrefix: "test"}, []string{"test/0", "test/1"}},
		} {
			recs, _ := Generate(c.opts)
			var got []string
			for _, r := range recs {
				got = append(got, r.ID)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("%+v: ids %q, want %q", c.opts, got, c.want)
			}
		}
	})
	t.Run("under speculation asking for latency and confidence does not change the scores", func(t *testing.T) {
		bare, _ := Generate(Options{Scenario: Speculation, N: 300, Seed: 5})
		full, _ := Generate(Options{Scenario: Speculation, N: 300, Seed: 5, Latency: true, Confidence: true})
		for i := range bare {
			bf, bs, _ := bare[i].Scores(FastModel, StrongModel)
			ff, fs, _ := full[i].Scores(FastModel, StrongModel)
			if bare[i].Prompt != full[i].Prompt || bf != ff || bs != fs {
				t.Fatalf("record %d: %q %v/%v without latency and confidence, %q %v/%v with them", i, bare[i].Prompt, bf, bs, full[i].Prompt, ff, fs)
			}
			if o := bare[i].Outcomes[FastModel]; o.LatencyMS != nil || o.Confidence != nil {
				t.Fatalf("record %d: latency or confidence written though not asked for: %+v", i, o)
			}
		}
	})
	t.Run("under speculation the fast tier's confidence sees what the prompt hides", func(t *testing.T) {
		// The scenario's point: among prompts of one topic, right fast
		// answers carry a clearly higher confidence than wrong ones. The
		// raw signal is 0.35 logit(P(fast right)) - 0.6 + N(0, 0.1), so
		// the gap is about one unit; 0.5 leaves a wide margin.
		recs, _ := Generate(Options{Scenario: Speculation, N: 4000, Seed: 6, Confidence: true})
		var sum, n [2]float64
		for _, r := range recs {
			if r.Meta["topic"] != "chemistry" {
				continue
			}
			f, _, _ := r.Scores(FastModel, StrongModel)
			sum[int(f)] += *r.Outcomes[FastModel].Confidence
			n[int(f)]++
		}
		if n[0] < 50 || n[1] < 50 {
			t.Fatalf("only %v wrong and %v right chemistry answers", n[0], n[1])
		}
		gap := sum[1]/n[1] - sum[0]/n[0]
		t.Logf("chemistry: %v wrong, %v right, confidence gap %.3f", n[0], n[1], gap)
		if gap < 0.5 {
			t.Errorf("mean confidence right minus wrong %.3f, want at least 0.5", gap)
		}
	})
	t.Run("an unknown scenario is an error that lists the known ones", func(t *testing.T) {
		err := Each(Options{Scenario: "chess", N: 1}, func(datasets.Record, Truth) error { return nil })
		if err == nil || !strings.Contains(err.Error(), `"chess"`) || !strings.Contains(err.Error(), "speculation") {
			t.Errorf("got %v, want an error naming chess and the known scenarios", err)
		}
	})
}
