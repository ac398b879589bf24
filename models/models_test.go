package models

import (
	"encoding/binary"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/triage-router/triage/classifier"
	"github.com/triage-router/triage/datasets/synth"
	"github.com/triage-router/triage/features"
	"github.com/triage-router/triage/internal/racetest"
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
	testOnce.Do(func() { testArt, testExamples, testErr = trainTestArtifact(ScorerPerTier) })
	if testErr != nil {
		tb.Fatal(testErr)
	}
	return testArt, testExamples
}

// trainTestArtifact trains on synthetic data with the given scorer ("" is
// the default, auto).
func trainTestArtifact(scorer string) (*Artifact, []Example, error) {
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
		Scorer:    scorer,
		Folds:     3,
		// 1e-2 converges in a fraction of 1e-4's iterations: under -race
		// this shared fit took 28 s at 1e-4 and about 3 s now, and none of
		// its users depends on how weak the penalty is.
		L2:  1e-2,
		Now: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC),
	})
	return a, ex, err
}

func TestPolicyDecide(t *testing.T) {
	p := Policy{SpeculateAbove: 0.3, EscalateAbove: 0.7, AcceptConfidence: 0.8}
	tests := []struct {
		pHard float64
		want  Decision
	}{{0, Fast}, {0.3, Fast}, {0.31, Speculate}, {0.7, Speculate}, {0.71, Escalate}, {1, Escalate},
		{math.NaN(), Escalate}} // a p_hard that could not be computed takes the safe side
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
	racetest.SkipSlow(t)
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
	racetest.SkipSlow(t)
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
	t.Run("trailing data after the JSON is refused", func(t *testing.T) {
		raw, _ := os.ReadFile(path)
		p := filepath.Join(dir, "trailing.json")
		os.WriteFile(p, append(raw, []byte(`{"more": true}`)...), 0o644)
		_, err := Load(p)
		if !errors.Is(err, ErrBadArtifact) || !strings.Contains(err.Error(), "trailing data") {
			t.Errorf("err = %v, want trailing data refused", err)
		}
		os.WriteFile(p, append(raw, " \n\t\n"...), 0o644)
		if _, err := Load(p); err != nil {
			t.Errorf("trailing white space: %v, want it accepted", err)
		}
	})
	t.Run("a file over the size limit is refused before it is read", func(t *testing.T) {
		raw, _ := os.ReadFile(path)
		_, err := LoadFile(path, int64(len(raw)-1))
		if !errors.Is(err, ErrBadArtifact) || !strings.Contains(err.Error(), "limits.max_artifact_bytes") {
			t.Errorf("err = %v, want the size limit named", err)
		}
		if _, err := LoadFile(path, int64(len(raw))); err != nil {
			t.Errorf("a file of exactly the limit: %v", err)
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
	t.Run("a version 1 file (one label model, no scorer field) still loads and routes the same", func(t *testing.T) {
		l, _, err := trainTestArtifact(ScorerLabel)
		if err != nil {
			t.Fatal(err)
		}
		c := *l
		c.FormatVersion, c.Scorer = 1, ""
		c.Signal, c.MetricsFrom = nil, "" // format 3 fields
		c.Checksum, _ = c.checksum()
		raw, _ := c.MarshalIndentForTest()
		if strings.Contains(string(raw), `"scorer"`) || strings.Contains(string(raw), `"fast_weights"`) {
			t.Fatal("a version 1 file must not carry the per-tier fields")
		}
		p := filepath.Join(dir, "v1.json")
		os.WriteFile(p, raw, 0o644)
		got, err := Load(p)
		if err != nil {
			t.Fatal(err)
		}
		rl, _ := NewRouter(l)
		rg, _ := NewRouter(got)
		for _, e := range ex[:50] {
			if x, y := rl.Route(e.Input), rg.Route(e.Input); x != y {
				t.Fatalf("%s: version %d label router says %+v, its version 1 copy %+v", e.ID, FormatVersion, x, y)
			}
		}
	})
	t.Run("inconsistent scorer fields are refused", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			edit func(c *Artifact)
			want string
		}{
			{"per-tier without a fast head", func(c *Artifact) { c.FastWeights = nil }, "fast_weights.dim"},
			{"a label router with a fast head", func(c *Artifact) { c.Scorer = ScorerLabel }, "fast_weights are set"},
			{"an unknown scorer", func(c *Artifact) { c.Scorer = "magic" }, `scorer is "magic"`},
			{"per-tier in a version 1 file", func(c *Artifact) { c.FormatVersion = 1 }, "needs format_version 2"},
			{"a NaN fast bias", func(c *Artifact) { c.FastBias = math.NaN() }, "fast_bias"},
			{"a blend without a gain head", func(c *Artifact) { c.Scorer = ScorerBlend }, "gain_weights.dim"},
			{"a gain router with a fast head", func(c *Artifact) { c.Scorer = ScorerGain }, "fast_weights are set"},
			{"a per-tier router with a gain head", func(c *Artifact) { c.GainWeights = c.Weights }, "gain_weights are set"},
			{"a blend in a version 2 file", func(c *Artifact) {
				c.Scorer, c.GainWeights, c.FormatVersion, c.Signal, c.MetricsFrom = ScorerBlend, c.Weights, 2, nil, ""
			}, `scorer "blend" needs format_version 3`},
			{"a signal in a version 2 file", func(c *Artifact) { c.FormatVersion = 2 }, "signal and metrics_from need format_version 3"},
			// Finite, but enough to overflow a logit to ±Inf (FuzzArtifact).
			{"a weight of 1e308", func(c *Artifact) {
				c.Weights = slices.Clone(c.Weights)
				c.Weights[7] = -1.7e308
			}, "weights[7] is -1.7e+308, want a finite number within ±1e+06"},
			{"a fast bias of 1e7", func(c *Artifact) { c.FastBias = 1e7 }, "fast_bias is 1e+07"},
		} {
			c := *a
			tc.edit(&c)
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: err = %v, want one containing %q", tc.name, err, tc.want)
			}
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
	if racetest.Enabled {
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
	racetest.SkipSlow(t)
	perTier, _ := testArtifact(t)
	label, _, err := trainTestArtifact(ScorerLabel)
	if err != nil {
		t.Fatal(err)
	}
	in := features.Input{Prompt: "Prove that there are infinitely many primes of the form 4k+3. Justify every step."}
	tests := []struct {
		name string
		a    *Artifact
		// want is what the contributions add up to.
		want func(r *Router) float64
	}{
		{"a label router's contributions add up to the logit less the bias", label,
			func(r *Router) float64 { return r.Score(in) - label.Bias }},
		{"a per-tier router's add up to the gap between the heads' logits, less their biases", perTier,
			func(r *Router) float64 {
				var v features.Vector
				ext, _ := features.NewExtractor(perTier.Features)
				ext.Extract(&v, in)
				zs, zf := r.model.Logit(v.Idx, v.Val), r.fast.Logit(v.Idx, v.Val)
				return (zs - perTier.Bias) - (zf - perTier.FastBias)
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.a.ScorerKind(); (got == ScorerLabel) != (tc.a == label) {
				t.Fatalf("scorer is %q", got)
			}
			r, err := NewRouter(tc.a)
			if err != nil {
				t.Fatal(err)
			}
			if got := r.Explain(in, 5); len(got) != 5 {
				t.Fatalf("got %d contributions, want 5", len(got))
			}
			var sum float64
			for _, c := range r.Explain(in, 0) {
				sum += c.Contribution
			}
			if want := tc.want(r); math.Abs(sum-want) > 1e-9 {
				t.Errorf("contributions sum to %v, want %v", sum, want)
			}
			// One convention with model show: each weight is the
			// artifact's ScoreWeights entry for the feature's index.
			sw := tc.a.ScoreWeights()
			ext, _ := features.NewExtractor(tc.a.Features)
			byName := map[string]float64{}
			ext.Describe(in, func(idx int32, _ float64, name string) { byName[name] = sw[idx] })
			for _, c := range r.Explain(in, 0) {
				if c.Weight != byName[c.Feature] {
					t.Errorf("%s: explain weight %v, model show's %v", c.Feature, c.Weight, byName[c.Feature])
				}
			}
		})
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

func TestColumnScales(t *testing.T) {
	// Four rows over 4 hashed columns, 2 numeric ones (index 4, 5) and a
	// meta block of 2 (index 6, 7).
	x := classifier.NewSparse(8)
	x.AppendRow([]int32{0, 1, 4, 5, 6}, []float64{1, 1, 0.30, 0.5, 1})
	x.AppendRow([]int32{0, 4, 5, 6}, []float64{1, 0.32, 0.5, 1})
	x.AppendRow([]int32{0, 2, 4, 5, 7}, []float64{1, 1, 0.34, 0.5, 1})
	x.AppendRow([]int32{0, 1, 5, 7}, []float64{1, 1, 0.5, 1}) // numeric 4 is 0 here
	b := blocks{hashed: 4, meta: 6}
	numSD := math.Sqrt(0.077 - 0.0576)
	tests := []struct {
		name string
		idf  bool
		g    GroupScales
		col  int
		want float64
	}{
		// Smoothed IDF, log((1+n)/(1+df)) + 1, as scikit-learn.
		{"a hashed column in every row gets IDF 1", true, GroupScales{}, 0, 1},
		{"a hashed column in two rows gets log(5/3)+1", true, GroupScales{}, 1, math.Log(5.0/3) + 1},
		{"a hashed column in one row is dropped (min_df 2)", true, GroupScales{}, 2, 0},
		{"a hashed column in no row is dropped", true, GroupScales{}, 3, 0},
		{"without IDF a hashed column keeps its values", false, GroupScales{}, 2, 1},
		// Values 0.30, 0.32, 0.34 and an implicit 0: mean 0.24, and the
		// population standard deviation is sqrt(E[x²] - mean²) =
		// sqrt((0.09+0.1024+0.1156)/4 - 0.0576) = sqrt(0.077 - 0.0576).
		{"a numeric column is scaled to unit standard deviation", true, GroupScales{}, 4, 1 / numSD},
		{"so it is without IDF too", false, GroupScales{}, 4, 1 / numSD},
		{"a numeric column that never varies is left alone", true, GroupScales{}, 5, 1},
		{"a meta column gets IDF like text", true, GroupScales{}, 6, math.Log(5.0/3) + 1},
		{"the numeric group's scale multiplies its columns", true, GroupScales{Numeric: 3}, 4, 3 / numSD},
		{"the meta group's scale multiplies its columns", true, GroupScales{Meta: 0.5}, 7, 0.5 * (math.Log(5.0/3) + 1)},
		{"a group that is off is zeroed", true, GroupScales{Meta: Off}, 6, 0},
		{"and the text is untouched by group scales", true, GroupScales{Numeric: 3, Meta: Off}, 1, math.Log(5.0/3) + 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := columnScales(x, b, tc.idf, tc.g)[tc.col]
			if math.Abs(got-tc.want) > 1e-9 {
				t.Errorf("scale of column %d = %v, want %v", tc.col, got, tc.want)
			}
		})
	}
}

// TestColumnScalesOfAConstantSlot: a numeric slot with the same non-zero
// value on every row (num:turns on a log of prompts: one turn each) is
// left at scale 1, however many rows. E[x²] − E[x]² left rounding error
// there whose square root passed for a spread (6e-8 on 2,000 rows), so the
// column was scaled by 1.6e7 and took a weight of −10 in the model's units.
func TestColumnScalesOfAConstantSlot(t *testing.T) {
	oneTurn := math.Log1p(1) / 4 // numericValues' num:turns of one turn
	for _, rows := range []int{3, 100, 2000, 14042} {
		x := classifier.NewSparse(3)
		for range rows {
			x.AppendRow([]int32{1}, []float64{oneTurn})
		}
		if got := columnScales(x, blocks{hashed: 1, meta: 3}, true, GroupScales{})[1]; got != 1 {
			t.Errorf("%d rows of %v: scale %v, want 1 (a column that never varies is left alone)", rows, oneTurn, got)
		}
	}
}

func TestParseNamesALogPassedAsAnArtifact(t *testing.T) {
	for name, in := range map[string]string{
		"one record":              `{"id":"a","prompt":"x","outcomes":{"f":{"score":1}}}`,
		"several records":         `{"id":"a","prompt":"x"}` + "\n" + `{"id":"b","prompt":"y"}` + "\n",
		"a record with messages":  `{"id":"a","messages":[{"role":"user","content":"x"}]}` + "\n",
		"a feedback export's row": `{"id":"r1","messages":[{"role":"user","content":"x"}],"outcomes":{"f":{"latency_ms":3}},"decision":{"decision":"fast"}}` + "\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(in))
			if !errors.Is(err, ErrBadArtifact) || !strings.Contains(err.Error(), "this is a log (JSON Lines records), not an artifact") {
				t.Errorf("err = %v, want ErrBadArtifact saying this is a log", err)
			}
		})
	}
	t.Run("other JSON is not called a log", func(t *testing.T) {
		_, err := Parse([]byte(`{"format_version": 0}`))
		if err == nil || strings.Contains(err.Error(), "is a log") {
			t.Errorf("err = %v, want a format_version error", err)
		}
	})
}

// TestParseSaysWhereTheJSONIsBroken: a syntax error in an artifact (a
// hand edit's stray comma, a NaN some tool wrote) names its line and
// column; "invalid character ','" alone left a person to search an
// indented file of thousands of lines.
func TestParseSaysWhereTheJSONIsBroken(t *testing.T) {
	for _, c := range []struct {
		name, body, want string
	}{
		{"a doubled comma", "{\n \"format_version\": 5,\n \"version\": \"v1\",,\n \"scorer\": \"gain\"\n}\n", "decode at line 3, column 18: invalid character ','"},
		{"a NaN", "{\n \"format_version\": 5,\n \"bias\": NaN\n}\n", "decode at line 3, column 10: invalid character 'N'"},
		{"an error on the first line", `{"format_version": 5 "version": "v1"}`, "decode at line 1, column 22: invalid character '\"'"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.body))
			if !errors.Is(err, ErrBadArtifact) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Parse: %v, want ErrBadArtifact saying %q", err, c.want)
			}
		})
	}
}

// TestParseSaysHowToChangeThresholds: the checksum refuses a hand edit
// (a threshold changed in an editor is the likeliest), and the refusal
// says how to make that change instead of only that the file changed.
func TestParseSaysHowToChangeThresholds(t *testing.T) {
	for _, c := range []struct {
		name, body, want string
	}{
		{"a checksum that does not match", `{"format_version": 5, "version": "v1", "checksum": "0123abcd"}`, "checksum mismatch"},
		{"a checksum taken out", `{"format_version": 5, "version": "v1"}`, "checksum is missing"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.body))
			if !errors.Is(err, ErrBadArtifact) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "set its thresholds with 'triage calibrate'") {
				t.Errorf("Parse: %v, want ErrBadArtifact saying %q and how to set thresholds", err, c.want)
			}
		})
	}
}

func TestLoadSaysWhatAnEmptyOrGzippedFileIs(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		body []byte
		want string
	}{
		{nil, "the file is empty (0 bytes)"},
		{[]byte{0x1f, 0x8b, 8, 0, 0, 0}, "the file is gzip-compressed"},
		// A feedback db in its place: bbolt's first meta page.
		{boltHead(), "this is a feedback db (a bbolt file), not a router artifact"},
		// Cut short: "decode: unexpected EOF" said nothing more.
		{[]byte(`{"format_version": 5, "scorer": "per-tier", "weights": [0.1, 0.2`), "the file ends inside the artifact's JSON after 64 bytes: it was cut short"},
	} {
		p := filepath.Join(dir, "m.json")
		if err := os.WriteFile(p, c.body, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(p); !errors.Is(err, ErrBadArtifact) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Load of %q: %v, want ErrBadArtifact saying %q", c.body, err, c.want)
		}
	}
}

// boltHead is the start of a bbolt file: page 0's header (id 0, the meta
// flag 0x04 at byte 8) and the magic number at byte 16, in the machine's
// byte order as bbolt writes them.
func boltHead() []byte {
	b := make([]byte, 4096)
	binary.NativeEndian.PutUint16(b[8:], 0x04)
	binary.NativeEndian.PutUint32(b[16:], 0xED0CDAED)
	return b
}

// TestLoadOfAMissingFileSaysHowToMakeOne: serving or measuring before
// training said only "no such file or directory".
func TestLoadOfAMissingFileSaysHowToMakeOne(t *testing.T) {
	p := filepath.Join(t.TempDir(), "router.json")
	_, err := Load(p)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "make one with 'triage train --data LOG --fast MODEL --strong MODEL -o "+p+"'") {
		t.Errorf("Load of a missing file: %v, want fs.ErrNotExist and the train command that makes it", err)
	}
}
