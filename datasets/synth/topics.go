package synth

// The Topics scenario: a prompt's topic and content (steps, asks for proof
// or code) set its difficulty, with noise the text does not show so no
// router is perfect.

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/triage-router/triage/datasets"
)

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

var tenants = []string{"acme", "globex", "initech"}

// nextTopics draws one request. Latency and cost are drawn only when asked
// for, so a log without them is the one it always was.
func nextTopics(r *rand.Rand, opts Options) draw {
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
	out := draw{
		prompt: prompt,
		meta:   datasets.Meta{"source": "synthetic", "subject": tp.name, "tenant": tenant},
		truth:  t,
		fast:   b2f(r.Float64() < t.PFast),
		strong: b2f(r.Float64() < t.PStrong),
	}
	if opts.Latency {
		outTok := 40 + 30*math.Max(d+2, 0) + 20*r.Float64()
		inTok := float64(len(prompt)) / 4
		// Lognormal latencies: the fast tier is usually 3-5x quicker,
		// but its tail overlaps the strong tier's body.
		out.fastMS = (120 + 6*outTok) * math.Exp(0.35*r.NormFloat64())
		out.strongMS = (400 + 18*outTok) * math.Exp(0.30*r.NormFloat64())
		out.fastUSD = (inTok*0.15 + outTok*0.6) / 1e6
		out.strongUSD = (inTok*2.5 + outTok*10) / 1e6
	}
	if opts.Confidence {
		// Mean token log-probability: right answers are surer, with
		// enough overlap that the gate is a tradeoff.
		c := -0.35 - 0.08*d + 0.18*r.NormFloat64()
		if out.fast == 0 {
			c = -0.85 - 0.05*d + 0.25*r.NormFloat64()
		}
		out.confidence = math.Min(c, 0)
	}
	return out
}
