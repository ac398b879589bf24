package upstreamsim

import "math"

func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\t' || c == '\r' }

// tokenize splits s into runs of non-space bytes, each with the spaces
// before it, so the tokens concatenate back to s.
func tokenize(s string) []string {
	var out []string
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && isSpace(s[j]) {
			j++
		}
		for j < len(s) && !isSpace(s[j]) {
			j++
		}
		out = append(out, s[i:j])
		i = j
	}
	return out
}

// countTokens is len(tokenize(s)) without the slice.
func countTokens(s string) int {
	n := 0
	for i := 0; i < len(s); {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		for i < len(s) && !isSpace(s[i]) {
			i++
		}
		n++
	}
	return n
}

// spreadLogprobs returns n per-token log-probabilities whose mean is mean.
// They vary (a fixed wave of +-50% around the mean) so a client cannot
// mistake them for a constant, keep the sign of mean, and the last one
// absorbs the rounding so the sum is n*mean to the last bit possible.
func spreadLogprobs(n int, mean float64) []float64 {
	if n == 0 {
		return nil
	}
	w := make([]float64, n)
	var sw float64
	for i := range w {
		w[i] = 1 + 0.5*math.Sin(1.7*float64(i)+0.3)
		sw += w[i]
	}
	sw /= float64(n)
	out := make([]float64, n)
	var sum float64
	for i := 0; i < n-1; i++ {
		out[i] = mean * w[i] / sw
		sum += out[i]
	}
	out[n-1] = mean*float64(n) - sum
	return out
}
