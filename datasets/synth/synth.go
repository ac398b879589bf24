// Package synth generates synthetic, plainly labelled routing logs whose
// true difficulty is known, so a router has something real to learn and
// tests can compare what a router estimates with the truth. It is what
// `triage synth` writes.
//
// A Scenario is the story behind a log:
//   - Topics (the default, and the bundled sample): whether a prompt is
//     hard depends on its content (topic, number of steps, asks for proof
//     or code), plus noise the text does not show;
//   - Speculation: the fast tier's chance of being right also moves with a
//     latent the prompt hides and only the fast tier's confidence sees, and
//     the fast tier sometimes stalls, so the confidence gate and speculation
//     pay off (see bench/curves and the curves tests).
//
// The same Options give the same bytes: the bundled sample and the figures
// quoted in docs depend on it (golden_test.go pins it).
package synth

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/triage-router/triage/datasets"
)

// Tier names in generated logs, whatever the scenario.
const (
	FastModel   = "synthetic/fast-small"
	StrongModel = "synthetic/strong-large"
)

// DefaultN is the number of records when Options.N is 0.
const DefaultN = 2000

// Scenario names the generative story behind a log.
type Scenario string

const (
	// Topics: difficulty comes from the prompt's topic and content, with
	// three tenants (one asks harder variants) in meta.
	Topics Scenario = "topics"
	// Speculation: difficulty the prompt reveals in part, a latent only
	// the fast tier's confidence sees, and a fast tier that stalls on 8%
	// of calls; speculation.go has the details.
	Speculation Scenario = "speculation"
)

// Scenarios lists every scenario, the default first.
var Scenarios = []Scenario{Topics, Speculation}

// ParseScenario returns the scenario named s ("" is Topics).
func ParseScenario(s string) (Scenario, error) {
	sc := Scenario(s)
	if sc == "" {
		sc = Topics
	}
	if _, ok := scenarios[sc]; !ok {
		return "", fmt.Errorf("unknown scenario %q, want one of %v", s, Scenarios)
	}
	return sc, nil
}

// Options controls Generate. Zero values mean defaults.
type Options struct {
	// Scenario is the story behind the log; "" means Topics.
	Scenario Scenario
	// N is the number of records; 0 means DefaultN.
	N int
	// Seed makes the log reproducible.
	Seed uint64
	// Latency adds latency_ms and cost_usd to every outcome.
	Latency bool
	// Confidence adds the fast tier's confidence (a mean token
	// log-probability-like signal, higher when its answer is right).
	Confidence bool
	// IDPrefix starts every record id, as "PREFIX/N"; "" means
	// "synth/SEED", so logs of different seeds never share an id.
	IDPrefix string
	// Start is the first record's timestamp; records are a second apart.
	// Zero means the scenario's own start (2026-11-01T00:00:00Z for Topics,
	// 2026-01-01T00:00:00Z for Speculation).
	Start time.Time
}

// Truth is what generated a record: its difficulty (on the scenario's own
// scale) and the probability that each tier answers it correctly. Under
// Topics PStrong >= PFast always; under Speculation the hidden latent can
// favour the fast tier.
type Truth struct {
	Difficulty float64
	PFast      float64
	PStrong    float64
}

// draw is one request as a scenario drew it, before Options decide which
// fields are written.
type draw struct {
	prompt       string
	meta         datasets.Meta
	truth        Truth
	fast, strong float64 // scores, 0 or 1
	// Latency (ms), cost (USD) and the fast tier's confidence, unrounded;
	// a scenario may leave them zero when Options did not ask for them.
	fastMS, strongMS, fastUSD, strongUSD float64
	confidence                           float64
}

// scenario is how one Scenario draws its log.
type scenario struct {
	stream uint64    // PCG stream, so two scenarios at one seed differ
	start  time.Time // default Options.Start
	// id formats record i's id after the prefix; each scenario keeps the
	// form its logs always had, because ids seed train's folds and so the
	// figures quoted from these logs.
	id func(i int) string
	// next draws one request.
	next func(r *rand.Rand, opts Options) draw
}

var scenarios = map[Scenario]scenario{
	Topics: {
		stream: 0x7472696167650a,
		start:  time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
		id:     func(i int) string { return fmt.Sprintf("%06d", i) },
		next:   nextTopics,
	},
	Speculation: {
		stream: 0x1a7e,
		start:  time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		id:     func(i int) string { return fmt.Sprint(i) },
		next:   nextSpeculation,
	},
}

// Generate returns the log and, for each record, the truth behind it. It
// panics on an unknown scenario (use ParseScenario on user input).
func Generate(opts Options) ([]datasets.Record, []Truth) {
	n := opts.N
	if n == 0 {
		n = DefaultN
	}
	recs := make([]datasets.Record, 0, n)
	truth := make([]Truth, 0, n)
	err := Each(opts, func(rec datasets.Record, t Truth) error {
		recs = append(recs, rec)
		truth = append(truth, t)
		return nil
	})
	if err != nil {
		panic("synth: " + err.Error())
	}
	return recs, truth
}

// Each generates the log one record at a time, so a million records need
// no memory; it stops at fn's first error.
func Each(opts Options, fn func(datasets.Record, Truth) error) error {
	name, err := ParseScenario(string(opts.Scenario))
	if err != nil {
		return err
	}
	sc := scenarios[name]
	n := opts.N
	if n == 0 {
		n = DefaultN
	}
	start := opts.Start
	if start.IsZero() {
		start = sc.start
	}
	prefix := opts.IDPrefix
	if prefix == "" {
		prefix = fmt.Sprintf("synth/%d", opts.Seed)
	}
	r := rand.New(rand.NewPCG(opts.Seed, sc.stream))
	for i := 0; i < n; i++ {
		d := sc.next(r, opts)
		fo := datasets.Outcome{Score: datasets.Float(d.fast)}
		so := datasets.Outcome{Score: datasets.Float(d.strong)}
		if opts.Latency {
			fo.LatencyMS = datasets.Float(round1(d.fastMS))
			so.LatencyMS = datasets.Float(round1(d.strongMS))
			fo.CostUSD = datasets.Float(round8(d.fastUSD))
			so.CostUSD = datasets.Float(round8(d.strongUSD))
		}
		if opts.Confidence {
			fo.Confidence = datasets.Float(round4(d.confidence))
		}
		rec := datasets.Record{
			ID:       prefix + "/" + sc.id(i),
			Prompt:   d.prompt,
			Meta:     d.meta,
			Outcomes: map[string]datasets.Outcome{FastModel: fo, StrongModel: so},
			TS:       start.Add(time.Duration(i) * time.Second),
		}
		if err := fn(rec, d.truth); err != nil {
			return err
		}
	}
	return nil
}

func sigmoid(z float64) float64 { return 1 / (1 + math.Exp(-z)) }

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func round1(x float64) float64 { return math.Round(x*10) / 10 }
func round4(x float64) float64 { return math.Round(x*1e4) / 1e4 }
func round8(x float64) float64 { return math.Round(x*1e8) / 1e8 }
