package synth

// The Speculation scenario: a log whose structure shows what the
// confidence gate and speculation buy (bench/curves/run.sh and the curves
// tests in cmd/triage rely on it). Per request:
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

import (
	"math"
	"math/rand/v2"
	"strings"

	"github.com/triage-router/triage/datasets"
)

var speculationTopics = []struct {
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

// nextSpeculation draws one request. Latency, cost and confidence are
// always drawn, so Options.Latency and Confidence only choose what is
// written and never change the scores.
func nextSpeculation(rng *rand.Rand, _ Options) draw {
	tp := speculationTopics[rng.IntN(len(speculationTopics))]
	d := math.Max(0, math.Min(1, tp.d+0.15*rng.NormFloat64()))
	u := rng.NormFloat64()

	var b strings.Builder
	b.WriteString(tp.name)
	b.WriteString(" question:")
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
	out := draw{
		prompt: b.String(),
		meta:   datasets.Meta{"source": "synth-latency", "topic": tp.name},
		truth:  Truth{Difficulty: d, PFast: pf, PStrong: ps},
		fast:   b2f(rng.Float64() < pf),
		strong: b2f(rng.Float64() < ps),
	}
	out.confidence = 0.35*math.Log(pf/(1-pf)) - 0.6 + 0.1*rng.NormFloat64()
	tok := 60 * math.Exp(1.2*d+0.3*rng.NormFloat64())
	out.fastMS = (200 + 3*tok) * math.Exp(0.15*rng.NormFloat64())
	if rng.Float64() < 0.08 {
		out.fastMS *= 5
	}
	out.strongMS = (600 + 11*tok) * math.Exp(0.45*rng.NormFloat64())
	out.fastUSD = 0.0001 + 0.6e-6*tok
	out.strongUSD = 0.002 + 30e-6*tok
	return out
}
