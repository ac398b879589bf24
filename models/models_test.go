package models

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/triage-router/triage/datasets/synth"
	"github.com/triage-router/triage/features"
)

var (
	testOnce     sync.Once
	testArt      *Artifact
	testExamples []Example
	testErr      error
)

// testArtifact trains a small router on the synthetic log, once per test
// binary (training under -race is slow). Callers must not modify it.
func testArtifact(tb testing.TB) (*Artifact, []Example) {
	tb.Helper()
	testOnce.Do(func() { testArt, testExamples, testErr = trainTestArtifact() })
	if testErr != nil {
		tb.Fatal(testErr)
	}
	return testArt, testExamples
}

func trainTestArtifact() (*Artifact, []Example, error) {
	recs, _ := synth.Generate(synth.Options{N: 1500, Seed: 5, Confidence: true})
	ex := make([]Example, len(recs))
	for i, r := range recs {
		f, s, _ := r.Scores(synth.FastModel, synth.StrongModel)
		c := *r.Outcomes[synth.FastModel].Confidence
		ex[i] = Example{ID: r.ID, Input: features.Input{Prompt: r.Prompt, Meta: r.Meta}, Fast: f, Strong: s, Fold: i % 3, Confidence: &c}
	}
	a, _, err := Train(ex[:1200], ex[1200:], TrainOptions{
		Tiers:     Tiers{Fast: synth.FastModel, Strong: synth.StrongModel},
		Label:     func(f, s float64) float64 { return b2f(s > f) },
		LabelName: "strong-wins",
		Folds:     3,
		L2:        1e-4,
		Now:       time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC),
	})
	return a, ex, err
}

func TestPolicyDecide(t *testing.T) {
	p := Policy{SpeculateAbove: 0.3, EscalateAbove: 0.7, AcceptConfidence: 0.8}
	tests := []struct {
		pHard float64
		want  Decision
	}{{0, Fast}, {0.3, Fast}, {0.31, Speculate}, {0.7, Speculate}, {0.71, Escalate}, {1, Escalate}}
	for _, tt := range tests {
		if got := p.Decide(tt.pHard); got != tt.want {
			t.Errorf("Decide(%v) = %s, want %s", tt.pHard, got, tt.want)
		}
	}
	if err := (Policy{SpeculateAbove: 0.8, EscalateAbove: 0.2}).Validate(); err == nil || !strings.Contains(err.Error(), "speculate_above") {
		t.Errorf("out-of-order thresholds: err = %v, want one naming speculate_above", err)
	}
}

func TestTrain(t *testing.T) {
	a, _ := testArtifact(t)
	t.Run("the router beats random on held-out synthetic data", func(t *testing.T) {
		// The synthetic log's difficulty is mostly readable from the text;
		// random is 0.5 and the oracle about 1.2.
		if got := a.Metrics["apgr"]; got < 0.6 {
			t.Errorf("held-out APGR %.3f, want >= 0.6", got)
		}
	})
	t.Run("the log's confidence gives a gate", func(t *testing.T) {
		if a.ConfidenceCalibration == nil {
			t.Fatal("no confidence calibration although every record has a confidence")
		}
		if a.Policy.SpeculateAbove >= a.Policy.EscalateAbove {
			t.Errorf("policy %+v has no speculate band", a.Policy)
		}
	})
	t.Run("the default thresholds give the documented shares", func(t *testing.T) {
		if got := a.ExpectedShares[Escalate]; math.Abs(got-DefaultEscalateShare) > 0.05 {
			t.Errorf("escalate share %.3f, want about %.2f", got, DefaultEscalateShare)
		}
	})
}

func TestArtifactRoundTrip(t *testing.T) {
	a, ex := testArtifact(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "router.json")
	if err := a.Save(path); err != nil {
		t.Fatal(err)
	}
	b, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	ra, _ := NewRouter(a)
	rb, _ := NewRouter(b)
	for _, e := range ex[:200] {
		if x, y := ra.Route(e.Input), rb.Route(e.Input); x != y {
			t.Fatalf("%s: saved router says %+v, loaded one %+v", e.ID, x, y)
		}
	}

	t.Run("a changed byte fails the checksum", func(t *testing.T) {
		raw, _ := os.ReadFile(path)
		bad := strings.Replace(string(raw), `"label": "strong-wins"`, `"label": "weak-fails"`, 1)
		p := filepath.Join(dir, "tampered.json")
		os.WriteFile(p, []byte(bad), 0o644)
		_, err := Load(p)
		if !errors.Is(err, ErrBadArtifact) || !strings.Contains(err.Error(), "checksum mismatch") {
			t.Errorf("err = %v, want a checksum mismatch", err)
		}
	})
	t.Run("a truncated file is refused", func(t *testing.T) {
		raw, _ := os.ReadFile(path)
		p := filepath.Join(dir, "truncated.json")
		os.WriteFile(p, raw[:len(raw)/2], 0o644)
		if _, err := Load(p); !errors.Is(err, ErrBadArtifact) {
			t.Errorf("err = %v, want ErrBadArtifact", err)
		}
	})
	t.Run("another format version is refused with a hint", func(t *testing.T) {
		c := *a
		c.FormatVersion = FormatVersion + 1
		c.Checksum, _ = c.checksum()
		raw, _ := c.MarshalIndentForTest()
		p := filepath.Join(dir, "future.json")
		os.WriteFile(p, raw, 0o644)
		_, err := Load(p)
		if err == nil || !strings.Contains(err.Error(), "format_version") {
			t.Errorf("err = %v, want one naming format_version", err)
		}
	})
	t.Run("an invalid artifact is not written", func(t *testing.T) {
		c := *a
		c.Policy.SpeculateAbove, c.Policy.EscalateAbove = 0.9, 0.1
		p := filepath.Join(dir, "invalid.json")
		if err := c.Save(p); err == nil {
			t.Error("saved an artifact whose thresholds are out of order")
		}
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Error("a refused save left a file behind")
		}
	})
}

func TestRouterAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items at random, so pooled scratch space allocates")
	}
	a, _ := testArtifact(t)
	r, err := NewRouter(a)
	if err != nil {
		t.Fatal(err)
	}
	in := features.Input{Prompt: prompt2KB(), Meta: map[string]string{"subject": "law"}}
	r.Route(in)
	if n := testing.AllocsPerRun(100, func() { r.Route(in) }); n != 0 {
		t.Errorf("Route allocates %v times per call, want 0", n)
	}
}

func TestExplain(t *testing.T) {
	a, _ := testArtifact(t)
	r, _ := NewRouter(a)
	in := features.Input{Prompt: "Prove that there are infinitely many primes of the form 4k+3. Justify every step."}
	got := r.Explain(in, 5)
	if len(got) != 5 {
		t.Fatalf("got %d contributions, want 5", len(got))
	}
	var sum float64
	for _, c := range r.Explain(in, 0) {
		sum += c.Contribution
	}
	// The contributions add up to the raw logit less the bias.
	if want := r.Logit(in) - a.Bias; math.Abs(sum-want) > 1e-9 {
		t.Errorf("contributions sum to %v, logit minus bias is %v", sum, want)
	}
}

func prompt2KB() string {
	var b strings.Builder
	for b.Len() < 2048 {
		b.WriteString("Which of the following best describes the doctrine of adverse possession in property law, and how does 3 + 4 = 7 apply? ")
	}
	return b.String()[:2048]
}

// BenchmarkRoute2KB is one routing decision on a 2 KB prompt: features,
// dot product, calibration and policy.
func BenchmarkRoute2KB(b *testing.B) {
	a, _ := testArtifact(b)
	r, _ := NewRouter(a)
	in := features.Input{Prompt: prompt2KB(), Meta: map[string]string{"subject": "law"}}
	b.ReportAllocs()
	b.SetBytes(int64(len(in.Prompt)))
	for b.Loop() {
		r.Route(in)
	}
}
