package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestHelpSaysWhatCommandsDo holds flag texts that were untrue to what
// the command does: curves' --grid named a margin grid only calibrate
// --knob margin makes; serve's threshold overrides did not say an N-tier
// router is refused with them; score's line said p_hard, which an N-tier
// router has none of; import wide-csv's --models default spoke of
// "metadata" columns without naming the ones that go into meta.
func TestHelpSaysWhatCommandsDo(t *testing.T) {
	for _, tt := range []struct {
		args []string
		flag string // "" for the command list's line
		want string
	}{
		{[]string{"help", "curves"}, "grid", "(with calibrate --knob margin, of the margin)"},
		{[]string{"help", "serve"}, "escalate-above", "two-tier routers: an N-tier one is refused with it"},
		{[]string{"help", "serve"}, "speculate-above", "two-tier routers: an N-tier one is refused with it"},
		{[]string{"help", "serve"}, "accept-confidence", "two-tier routers: an N-tier one is refused with it"},
		{[]string{"help", "import", "wide-csv"}, "models", "category, subject, source, eval_name, tenant, language, task and dataset, which go into meta"},
		{[]string{"help", "train"}, "folds", "chooses the scorer and L2"},
		// retrain refuses an N-tier champion; the list did not say so.
		{[]string{"help"}, "", "retrain            train a challenger on a log plus served feedback; promote it only if it is not worse (two-tier routers)"},
		{[]string{"help"}, "", "score              print p_hard and the decision for each record of a log (N tiers: the tier chosen and each tier's predicted score)"},
	} {
		t.Run(strings.Join(tt.args, " ")+" "+tt.flag, func(t *testing.T) {
			stdout, _, code := run(t, tt.args...)
			if code != 0 {
				t.Fatalf("%v exited %d", tt.args, code)
			}
			text := stdout
			if tt.flag != "" {
				_, after, ok := strings.Cut(stdout, "  -"+tt.flag+" ")
				if !ok {
					t.Fatalf("%v lists no --%s", tt.args, tt.flag)
				}
				_, after, _ = strings.Cut(after, "\n")
				text, _, _ = strings.Cut(after, "\n")
			}
			if !strings.Contains(text, tt.want) {
				t.Errorf("%v --%s: %q, want %q in it", tt.args, tt.flag, text, tt.want)
			}
		})
	}
}

// TestServeNamesTheFlagsAnNTierRouterRefuses: serve --escalate-above on an
// N-tier router was refused as "the config's thresholds" with no config
// given.
func TestServeNamesTheFlagsAnNTierRouterRefuses(t *testing.T) {
	dir := t.TempDir()
	model := trainThreeTiers(t, dir, threeTierLog(t, dir, 90))
	_, stderr, code := run(t, "serve", "--model", model, "--db", filepath.Join(dir, "f.db"), "--addr", "127.0.0.1:0", "--escalate-above", "0.5")
	if code == 0 || !strings.Contains(stderr, "--escalate-above") {
		t.Errorf("exit %d, stderr %q; want a refusal naming --escalate-above", code, stderr)
	}
}

// TestScoreSaysOneSkippedLineInTheSingular: "skipped 1 malformed line
// (--skip-bad); they have no score line".
func TestScoreSaysOneSkippedLineInTheSingular(t *testing.T) {
	dir := t.TempDir()
	model := trainThreeTiers(t, dir, threeTierLog(t, dir, 90))
	log := writeFile(t, dir, "score.jsonl", `{"id":"a","prompt":"write a short poem"}`+"\nnot json\n")
	_, stderr, code := run(t, "score", "--model", model, "--data", log, "--skip-bad")
	if code != 0 || !strings.Contains(stderr, "skipped 1 malformed line (--skip-bad); it has no score line") {
		t.Errorf("exit %d, stderr %q; want one skipped line in the singular", code, stderr)
	}
}
