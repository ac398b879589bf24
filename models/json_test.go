package models

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/triage-router/triage/features"
)

// TestUndefinedFiguresSurviveJSON: where the two tiers' mean scores are
// equal, APGR divides by a zero gap and is undefined (NaN), and JSON has
// no NaN. Such a log once made train fail at the end with "encode
// artifact: json: unsupported value: NaN", and eval --json the same; the
// signal and the report now carry the figure as null and read it back as
// NaN, and a finite signal encodes byte for byte as before, since the
// artifact's checksum hashes its JSON.
func TestUndefinedFiguresSurviveJSON(t *testing.T) {
	nan := math.NaN()
	sig := Signal{Routable: false, APGR: nan, Lo: nan, Hi: nan, Gain: 0, GainLo: -0.03, GainHi: 0.03, NullQ95: nan, Reason: "the strong tier is not measurably better"}
	b, err := json.Marshal(sig)
	if err != nil {
		t.Fatalf("marshal a signal with an undefined APGR: %v", err)
	}
	if want := `{"routable":false,"significant":false,"apgr":null,"apgr_lo":null,"apgr_hi":null,"gain":0,"gain_lo":-0.03,"gain_hi":0.03,"reason":"the strong tier is not measurably better"}`; string(b) != want {
		t.Errorf("signal JSON\n%s\nwant\n%s", b, want)
	}
	var back Signal
	if err := json.Unmarshal(b, &back); err != nil || !math.IsNaN(back.APGR) || !math.IsNaN(back.Hi) || back.GainHi != 0.03 || back.Reason != sig.Reason {
		t.Errorf("read back %+v (%v)", back, err)
	}

	// A finite signal: the encoding Signal had before it had a
	// MarshalJSON (the plain struct's), so old artifacts verify.
	fin := Signal{Routable: true, Significant: true, APGR: 0.7, Lo: 0.68, Hi: 0.72, Gain: 0.12, GainLo: 0.11, GainHi: 0.13, NullQ95: 0.52}
	type plain Signal
	got, _ := json.Marshal(fin)
	old, _ := json.Marshal(plain(fin))
	if string(got) != string(old) {
		t.Errorf("a finite signal encodes as\n%s\nbut as\n%s before", got, old)
	}

	r := Report{N: 10, APGR: nan, CPT50: 1, CPT80: 1, CPT95: 1, AUC: &nan}
	b, err = json.Marshal(r)
	if err != nil || string(b) != `{"n":10,"apgr":null,"cpt50":1,"cpt80":1,"cpt95":1}` {
		t.Errorf("report JSON %s (%v)", b, err)
	}
	var rb Report
	if err := json.Unmarshal(b, &rb); err != nil || !math.IsNaN(rb.APGR) || rb.CPT95 != 1 || rb.AUC != nil {
		t.Errorf("report read back %+v (%v)", rb, err)
	}

	// An artifact whose signal has an undefined APGR saves and loads.
	a, _ := testArtifact(t)
	c := *a
	c.Signal = &sig
	c.Policy = NoRoutePolicy()
	path := filepath.Join(t.TempDir(), "tied.json")
	if err := c.Save(path); err != nil {
		t.Fatalf("save: %v", err)
	}
	l, err := Load(path)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if l.Signal == nil || !math.IsNaN(l.Signal.APGR) || !strings.HasPrefix(l.Signal.String(), "cannot route: the strong tier") {
		t.Errorf("loaded signal %+v", l.Signal)
	}
}

// A head is decoded into a dense slice of its dim, so the dim a file may
// ask for is capped at the largest feature spec's: a few bytes must not
// allocate half a gigabyte.
func TestWeightsDimIsCapped(t *testing.T) {
	var w Weights
	in := `{"dim": 67108864, "non_zero": 0, "encoding": "sparse-u32-f64le-base64", "data": ""}`
	if err := json.Unmarshal([]byte(in), &w); err == nil || !strings.Contains(err.Error(), "weights.dim is 67108864") {
		t.Errorf("dim 1<<26: err = %v, want one naming the dim", err)
	}
	in = `{"dim": 1034, "non_zero": 0, "encoding": "sparse-u32-f64le-base64", "data": ""}`
	if err := json.Unmarshal([]byte(in), &w); err != nil || len(w) != 1034 {
		t.Errorf("dim 1034: %d weights, err %v", len(w), err)
	}
	if maxWeightsDim < features.DefaultSpec().Dim() || maxWeightsDim > 1<<25 {
		t.Errorf("maxWeightsDim %d: want at least the default spec's %d and under 1<<25", maxWeightsDim, features.DefaultSpec().Dim())
	}
}

// The cap per head did not bound a file: tier_heads may list any number
// of heads, each a hundred bytes saying the largest dim, and a 600-byte
// file allocated 771 MiB before any check refused it.
func TestParseBoundsTheHeadsBeforeDecodingThem(t *testing.T) {
	head := fmt.Sprintf(`{"weights":{"dim":%d,"non_zero":0,"encoding":"sparse-u32-f64le-base64","data":""}}`, maxWeightsDim)
	heads := strings.Repeat(head+",", 5) + head
	b := []byte(`{"format_version":5,"version":"x","scorer":"tiers","tier_heads":[` + heads + `]}`)
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	_, err := Parse(b)
	runtime.ReadMemStats(&m1)
	if !errors.Is(err, ErrBadArtifact) || !strings.Contains(err.Error(), "over the limit") {
		t.Errorf("%d bytes declaring 6 heads of dim %d: err = %v, want ErrBadArtifact naming the limit", len(b), maxWeightsDim, err)
	}
	if mb := (m1.TotalAlloc - m0.TotalAlloc) >> 20; mb > 16 {
		t.Errorf("parsing %d bytes allocated %d MiB", len(b), mb)
	}
	// Validate refuses to write what Parse would refuse to read (with the
	// limit lowered, so the test need not allocate 512 MiB).
	a := Artifact{FormatVersion: FormatVersion, Version: "x", Features: features.DefaultSpec(), Scorer: ScorerTiers}
	dim := a.Features.Dim()
	defer func(old int) { maxHeadWeights = old }(maxHeadWeights)
	maxHeadWeights = 3 * dim
	for range 4 {
		a.TierHeads = append(a.TierHeads, TierHead{Weights: make(Weights, dim)})
	}
	if err := a.Validate(); err == nil || !strings.Contains(err.Error(), "over the limit") {
		t.Errorf("%d heads of dim %d: Validate says %v, want the limit named", len(a.TierHeads), dim, err)
	}
}
