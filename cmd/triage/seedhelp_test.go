package main

import (
	"strings"
	"testing"
)

// TestSeedHelpSaysWhatItSeeds: --seed seeds folds in train, eval and
// retrain and a bootstrap in curves and calibrate. eval's help said "seed
// of the id-hash split and folds", a split eval does not make, and none
// said which of the two a command's --seed was.
func TestSeedHelpSaysWhatItSeeds(t *testing.T) {
	for _, tt := range []struct {
		cmd     string
		want    []string
		notWant []string
	}{
		{"train", []string{"--holdout split", "cross-validation folds", "beats random"}, []string{"bootstrap"}},
		{"eval", []string{"eval --cv", "folds", "eval --model refuses it"}, []string{"split", "bootstrap"}},
		{"retrain", []string{"cross-validation folds", "the bootstrap seed is --bootstrap-seed"}, nil},
		{"curves", []string{"bootstrap resamples", "it seeds no folds"}, nil},
		{"calibrate", []string{"bootstrap resamples", "it seeds no folds"}, nil},
	} {
		t.Run(tt.cmd, func(t *testing.T) {
			stdout, _, code := run(t, "help", tt.cmd)
			if code != 0 {
				t.Fatalf("help %s exited %d", tt.cmd, code)
			}
			_, after, ok := strings.Cut(stdout, "  -seed uint\n")
			if !ok {
				t.Fatalf("help %s lists no --seed: %s", tt.cmd, stdout)
			}
			usage, _, _ := strings.Cut(after, "\n")
			for _, w := range tt.want {
				if !strings.Contains(usage, w) {
					t.Errorf("--seed of %s: %q, want %q in it", tt.cmd, usage, w)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(usage, w) {
					t.Errorf("--seed of %s: %q says %q, which it does not seed", tt.cmd, usage, w)
				}
			}
		})
	}
}
