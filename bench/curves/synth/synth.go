// Package synth generates a labelled log with latency, cost and the fast
// tier's confidence whose structure is known, to show what the confidence
// gate and speculation buy (see bench/curves).
//
// The structure, per request:
//   - a difficulty d in [0,1] that the prompt's words reveal in part (topic
//     and marker words), so a router can learn it;
//   - a latent u ~ N(0,1) the prompt does not show, which moves the fast
//     tier's chance of being right; only the fast tier's confidence sees
//     it, so the gate knows something p_hard cannot;
//   - P(fast correct) = sigmoid(4.5 - 5d + 2u), P(strong correct) =
//     sigmoid(4.5 - 2.5d + 0.3u) (about 0.78 and 0.95 on average);
//   - raw confidence = 0.35 * logit(P(fast correct)) - 0.6 + N(0, 0.1), a
//     mean-log-probability-like signal on its own scale;
//   - output tokens grow with d; the fast tier takes 200 ms plus 3 ms a
//     token with 15% log-normal noise, and stalls (x5) on 8% of calls, so
//     the strong answer sometimes arrives first; the strong tier takes
//     600 ms plus 11 ms a token with 45% log-normal noise;
//   - cost: fast $0.0001 + $0.6 per M output tokens, strong $0.002 + $30
//     per M output tokens.
//
// Fast/escalate routing can only use p_hard; speculation keeps a fast
// answer whose confidence clears the gate, at fast latency, so at the same
// quality fewer requests wait for the strong tier, which lowers p95.
package synth

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/triage-router/triage/datasets"
)

// Model names of the two tiers.
const (
	FastModel   = "synth/fast-8b"
	StrongModel = "synth/strong-400b"
)

var topics = []struct {
	name string
	d    float64
}{
	{"greetings", 0.05}, {"spelling", 0.1}, {"geography", 0.25}, {"history", 0.35},
	{"chemistry", 0.5}, {"statistics", 0.6}, {"algebra", 0.7}, {"proofs", 0.85},
}

var (
	easyWords = []string{"what", "name", "define", "list", "simple", "quick"}
	hardWords = []string{"prove", "derive", "optimise", "multi-step", "asymptotic", "rigorous"}
	filler    = []string{"the", "a", "of", "for", "in", "please", "about", "this", "that", "with", "and", "some"}
)

// Options configures Generate.
type Options struct {
	// N is the number of records.
	N int
	// Seed makes the log reproducible.
	Seed uint64
	// IDPrefix prefixes record ids; "" means "synth-latency".
	IDPrefix string
}

func sigmoid(z float64) float64 { return 1 / (1 + math.Exp(-z)) }

// Generate returns the log.
func Generate(opts Options) []datasets.Record {
	if opts.IDPrefix == "" {
		opts.IDPrefix = "synth-latency"
	}
	rng := rand.New(rand.NewPCG(opts.Seed, 0x1a7e))
	ts := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	out := make([]datasets.Record, opts.N)
	var b strings.Builder
	for i := range out {
		tp := topics[rng.IntN(len(topics))]
		d := math.Max(0, math.Min(1, tp.d+0.15*rng.NormFloat64()))
		u := rng.NormFloat64()

		b.Reset()
		fmt.Fprintf(&b, "%s question:", tp.name)
		words := 6 + int(10*d) + rng.IntN(4)
		for w := 0; w < words; w++ {
			b.WriteByte(' ')
			switch r := rng.Float64(); {
			case r < 0.25*d:
				b.WriteString(hardWords[rng.IntN(len(hardWords))])
			case r < 0.25:
				b.WriteString(easyWords[rng.IntN(len(easyWords))])
			default:
				b.WriteString(filler[rng.IntN(len(filler))])
			}
		}
		b.WriteByte('?')

		pf := sigmoid(4.5 - 5*d + 2*u)
		ps := sigmoid(4.5 - 2.5*d + 0.3*u)
		fs, ss := 0.0, 0.0
		if rng.Float64() < pf {
			fs = 1
		}
		if rng.Float64() < ps {
			ss = 1
		}
		conf := 0.35*math.Log(pf/(1-pf)) - 0.6 + 0.1*rng.NormFloat64()
		tok := 60 * math.Exp(1.2*d+0.3*rng.NormFloat64())
		fl := (200 + 3*tok) * math.Exp(0.15*rng.NormFloat64())
		if rng.Float64() < 0.08 {
			fl *= 5
		}
		sl := (600 + 11*tok) * math.Exp(0.45*rng.NormFloat64())
		fc := 0.0001 + 0.6e-6*tok
		sc := 0.002 + 30e-6*tok

		out[i] = datasets.Record{
			ID:     fmt.Sprintf("%s/%d", opts.IDPrefix, i),
			Prompt: b.String(),
			Meta:   datasets.Meta{"source": "synth-latency", "topic": tp.name},
			Outcomes: map[string]datasets.Outcome{
				FastModel: {Score: datasets.Float(fs), LatencyMS: datasets.Float(round(fl, 1)), CostUSD: datasets.Float(round(fc, 8)),
					Confidence: datasets.Float(round(conf, 4))},
				StrongModel: {Score: datasets.Float(ss), LatencyMS: datasets.Float(round(sl, 1)), CostUSD: datasets.Float(round(sc, 8))},
			},
			TS: ts.Add(time.Duration(i) * time.Second),
		}
	}
	return out
}

func round(x float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}
