// Package suggest finds the word a typo most likely meant, for error
// messages that say "did you mean ...?": a misspelt command, subcommand
// or config key.
package suggest

import "strings"

// Nearest returns the word of known fewest edits away from word, when
// that is near enough to be a typo: at most one edit for a word of up to
// four letters, two for longer ones. It returns "" otherwise.
func Nearest(word string, known []string) string {
	limit := 1
	if len(word) >= 5 {
		limit = 2
	}
	best, bestD := "", limit+1
	for _, k := range known {
		if d := Distance(word, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// Distance is the optimal string alignment distance between a and b:
// insertions, deletions, substitutions and swaps of two adjacent bytes
// (the commonest typo, "trian") each count one.
func Distance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// Model returns the model name of known that name most likely means, for
// a "did you mean" after a --fast or --strong that no record names: the
// one known name equal to it but for case, else the one that contains it
// (ignoring case: "mistral-7b" for "mistralai/Mistral-7B-v0.1"), else the
// nearest typo of the whole name or of the part after its last "/". It
// returns "" when none, or more than one, fits.
func Model(name string, known []string) string {
	low := strings.ToLower(name)
	if low == "" {
		return ""
	}
	var contains []string
	for _, k := range known {
		kl := strings.ToLower(k)
		if kl == low {
			return k
		}
		if strings.Contains(kl, low) {
			contains = append(contains, k)
		}
	}
	if len(contains) == 1 {
		return contains[0]
	}
	if len(contains) > 1 {
		return ""
	}
	lower := make([]string, len(known))
	base := make([]string, len(known))
	for i, k := range known {
		lower[i] = strings.ToLower(k)
		base[i] = lower[i][strings.LastIndex(lower[i], "/")+1:]
	}
	for _, cands := range [][]string{lower, base} {
		if near := Nearest(low, cands); near != "" {
			for i, c := range cands {
				if c == near {
					return known[i]
				}
			}
		}
	}
	return ""
}
