// Package synth generates synthetic, plainly labelled routing logs whose
// true difficulty is known. Whether a prompt is hard depends on its
// content (topic, number of steps, asks for proof or code), so a router
// has something real to learn, and tests can compare what a router
// estimates with the truth.
package synth

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/triage-router/triage/datasets"
)

// Default tier names in generated logs.
const (
	FastModel   = "synthetic/fast-small"
	StrongModel = "synthetic/strong-large"
)

// Options controls Generate. Zero values mean defaults.
type Options struct {
	// N is the number of records; 0 means 2000.
	N int
	// Seed makes the log reproducible.
	Seed uint64
	// Latency adds latency_ms and cost_usd to every outcome.
	Latency bool
	// Confidence adds the fast tier's confidence (a mean token
	// log-probability, higher when its answer is right).
	Confidence bool
	// Start is the first record's timestamp; records are a second apart.
	// Zero means 2026-11-01T00:00:00Z.
	Start time.Time
}

// Truth is what generated a record: the probability that each tier
// answers it correctly.
type Truth struct {
	Difficulty float64
	PFast      float64
	PStrong    float64
}

type topic struct {
	name  string
	base  float64 // difficulty offset
	build func(r *rand.Rand) (prompt string, extra float64)
}

var (
	names     = []string{"Alice", "Bob", "Chen", "Dana", "Emeka", "Farah", "Goran", "Hana"}
	countries = []string{"France", "Japan", "Kenya", "Peru", "Canada", "Norway", "Egypt", "India", "Chile", "Poland"}
	langs     = []string{"French", "German", "Spanish", "Italian", "Portuguese", "Dutch"}
	things    = []string{"apples", "books", "tickets", "coins", "marbles", "stamps"}
	codeTasks = []struct {
		text string
		hard float64
	}{
		{"reverses a string", 0},
		{"checks whether a number is even", 0},
		{"sums a list of integers", 0},
		{"parses a CSV line with quoted fields and escaped quotes", 1.2},
		{"implements a thread-safe LRU cache with O(1) get and put", 2.0},
		{"finds the longest increasing subsequence in O(n log n)", 2.2},
		{"merges overlapping intervals", 1.0},
		{"implements Dijkstra's shortest path with a binary heap", 1.8},
	}
	codeLangs = []string{"Python", "Go", "Rust", "JavaScript", "C++"}
	proofs    = []struct {
		text string
		hard float64
	}{
		{"the sum of two even numbers is even", 0.2},
		{"the square root of 2 is irrational", 1.2},
		{"there are infinitely many primes of the form 4k+3", 2.4},
		{"every finite group of prime order is cyclic", 2.0},
		{"a continuous function on [a,b] attains its maximum", 2.2},
	}
	facts = []string{"What is the capital of %s?", "What is the main language spoken in %s?", "Which continent is %s in?", "What currency does %s use?"}
)

var topics = []topic{
	{"arithmetic", -1.2, func(r *rand.Rand) (string, float64) {
		steps := 1 + r.IntN(5)
		var b strings.Builder
		b.WriteString("Compute ")
		b.WriteString(fmt.Sprint(2 + r.IntN(98)))
		ops := []string{" + ", " - ", " * ", " / "}
		for i := 0; i < steps; i++ {
			b.WriteString(ops[r.IntN(len(ops))])
			b.WriteString(fmt.Sprint(2 + r.IntN(98)))
		}
		b.WriteString(". Give the exact value.")
		return b.String(), 0.55 * float64(steps)
	}},
	{"word-problem", -0.4, func(r *rand.Rand) (string, float64) {
		steps := 1 + r.IntN(4)
		a, t := names[r.IntN(len(names))], things[r.IntN(len(things))]
		var b strings.Builder
		fmt.Fprintf(&b, "%s has %d %s.", a, 5+r.IntN(50), t)
		verbs := []string{"buys %d more", "gives away %d", "loses %d", "doubles the number and then sells %d"}
		for i := 0; i < steps; i++ {
			fmt.Fprintf(&b, " Then %s %s.", a, fmt.Sprintf(verbs[r.IntN(len(verbs))], 1+r.IntN(20)))
		}
		fmt.Fprintf(&b, " How many %s does %s have now?", t, a)
		return b.String(), 0.6 * float64(steps)
	}},
	{"trivia", -2.0, func(r *rand.Rand) (string, float64) {
		return fmt.Sprintf(facts[r.IntN(len(facts))], countries[r.IntN(len(countries))]), 0.3 * r.Float64()
	}},
	{"translation", -1.5, func(r *rand.Rand) (string, float64) {
		n := 3 + r.IntN(20)
		words := []string{"the", "weather", "is", "nice", "today", "and", "we", "will", "walk", "to", "the", "market", "after", "lunch", "because", "friends", "are", "waiting", "there", "with", "fresh", "bread"}
		s := make([]string, n)
		for i := range s {
			s[i] = words[r.IntN(len(words))]
		}
		return fmt.Sprintf("Translate into %s: %q", langs[r.IntN(len(langs))], strings.Join(s, " ")), 0.05 * float64(n)
	}},
	{"code", -0.3, func(r *rand.Rand) (string, float64) {
		t := codeTasks[r.IntN(len(codeTasks))]
		l := codeLangs[r.IntN(len(codeLangs))]
		p := fmt.Sprintf("Write a %s function that %s.", l, t.text)
		if r.IntN(3) == 0 {
			p += " Include unit tests and explain the time complexity."
			return p, t.hard + 0.6
		}
		return p, t.hard
	}},
	{"proof", 0.6, func(r *rand.Rand) (string, float64) {
		t := proofs[r.IntN(len(proofs))]
		return fmt.Sprintf("Prove that %s. Justify every step.", t.text), t.hard
	}},
	{"reasoning", 0.0, func(r *rand.Rand) (string, float64) {
		a, b, c := names[r.IntN(len(names))], names[r.IntN(len(names))], names[r.IntN(len(names))]
		n := 2 + r.IntN(4)
		var s strings.Builder
		fmt.Fprintf(&s, "%s is taller than %s. %s is shorter than %s.", a, b, c, b)
		for i := 2; i < n; i++ {
			fmt.Fprintf(&s, " %s is not the shortest unless %s is older than %s.", names[r.IntN(len(names))], names[r.IntN(len(names))], names[r.IntN(len(names))])
		}
		s.WriteString(" Who is the tallest? Explain why.")
		return s.String(), 0.5 * float64(n)
	}},
}

func sigmoid(z float64) float64 { return 1 / (1 + math.Exp(-z)) }

// Generate returns the log and, for each record, the truth behind it.
func Generate(opts Options) ([]datasets.Record, []Truth) {
	n := opts.N
	if n == 0 {
		n = 2000
	}
	recs := make([]datasets.Record, 0, n)
	truth := make([]Truth, 0, n)
	Each(opts, func(rec datasets.Record, t Truth) error {
		recs = append(recs, rec)
		truth = append(truth, t)
		return nil
	})
	return recs, truth
}

// Each generates the log one record at a time, so a million records need
// no memory; it stops at fn's first error.
func Each(opts Options, fn func(datasets.Record, Truth) error) error {
	n := opts.N
	if n == 0 {
		n = 2000
	}
	start := opts.Start
	if start.IsZero() {
		start = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	}
	r := rand.New(rand.NewPCG(opts.Seed, 0x7472696167650a))
	tenants := []string{"acme", "globex", "initech"}
	for i := 0; i < n; i++ {
		tp := topics[r.IntN(len(topics))]
		prompt, extra := tp.build(r)
		tenant := tenants[r.IntN(len(tenants))]
		// Difficulty: the topic, its content, and noise the text does not
		// show (so no router is perfect).
		d := tp.base + extra + 0.5*r.NormFloat64()
		if tenant == "initech" {
			d += 0.3 // a tenant whose users ask harder variants
		}
		// The strong tier is never worse in expectation.
		pf := sigmoid(1.5 - 1.6*d)
		t := Truth{Difficulty: d, PFast: pf, PStrong: math.Max(pf, sigmoid(3.2-0.9*d))}
		fast := b2f(r.Float64() < t.PFast)
		strong := b2f(r.Float64() < t.PStrong)
		fo := datasets.Outcome{Score: datasets.Float(fast)}
		so := datasets.Outcome{Score: datasets.Float(strong)}
		if opts.Latency {
			outTok := 40 + 30*math.Max(d+2, 0) + 20*r.Float64()
			inTok := float64(len(prompt)) / 4
			// Lognormal latencies: the fast tier is usually 3-5x quicker,
			// but its tail overlaps the strong tier's body.
			fo.LatencyMS = datasets.Float(round1((120 + 6*outTok) * math.Exp(0.35*r.NormFloat64())))
			so.LatencyMS = datasets.Float(round1((400 + 18*outTok) * math.Exp(0.30*r.NormFloat64())))
			fo.CostUSD = datasets.Float(round8((inTok*0.15 + outTok*0.6) / 1e6))
			so.CostUSD = datasets.Float(round8((inTok*2.5 + outTok*10) / 1e6))
		}
		if opts.Confidence {
			// Mean token log-probability: right answers are surer, with
			// enough overlap that the gate is a tradeoff.
			c := -0.35 - 0.08*d + 0.18*r.NormFloat64()
			if fast == 0 {
				c = -0.85 - 0.05*d + 0.25*r.NormFloat64()
			}
			fo.Confidence = datasets.Float(round4(math.Min(c, 0)))
		}
		rec := datasets.Record{
			ID:       fmt.Sprintf("synth/%d/%06d", opts.Seed, i),
			Prompt:   prompt,
			Meta:     datasets.Meta{"source": "synthetic", "subject": tp.name, "tenant": tenant},
			Outcomes: map[string]datasets.Outcome{FastModel: fo, StrongModel: so},
			TS:       start.Add(time.Duration(i) * time.Second),
		}
		if err := fn(rec, t); err != nil {
			return err
		}
	}
	return nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func round1(x float64) float64 { return math.Round(x*10) / 10 }
func round4(x float64) float64 { return math.Round(x*1e4) / 1e4 }
func round8(x float64) float64 { return math.Round(x*1e8) / 1e8 }
