package retrain

import (
	"errors"
	"strings"
	"testing"

	"github.com/triage-router/triage/models"
)

// An N-tier champion is refused with what does learn from its traffic:
// the train command with its own tiers, policy, holdout and seed and
// --partial-records, and the comparison on the offline log's held-out
// records (docs/loop.md §8). Before, the advice named --tier ... and "the
// newest records", which have one tier's score and cannot measure it.
func TestCheckChampionNTierAdvice(t *testing.T) {
	tiers := []models.Tier{{Name: "small", Price: 0.1}, {Name: "mid", Price: 1}, {Name: "large", Price: 3}}
	champ := func(h float64, seed uint64, p models.TierPolicy) *models.Artifact {
		return &models.Artifact{Scorer: models.ScorerTiers, TierList: tiers, TierPolicy: &p, Training: models.Fingerprint{HoldoutShare: h, Seed: seed}}
	}
	for _, tt := range []struct {
		name       string
		a          *models.Artifact
		want, miss []string
	}{
		{"held out, with a policy", champ(0.25, 7, models.TierPolicy{Lambda: 0.05, Race: 0.02, AcceptConfidence: 0.9}),
			[]string{"`triage train --data LOG,EXPORT --tiers small=0.1,mid=1,large=3 --lambda 0.05 --race 0.02 --accept-confidence 0.9 --holdout 0.25 --seed 7 --partial-records -o NEW.json`",
				"`triage eval --model ROUTER --data LOG --unseen` of both. docs/loop.md §8"},
			[]string{"--margin", "train the current one again"}},
		{"trained on its whole log", champ(0, 3, models.TierPolicy{AcceptConfidence: models.DefaultAcceptConfidence}),
			[]string{"--tiers small=0.1,mid=1,large=3 --holdout 0.2 --seed 1 --partial-records -o NEW.json`", "after training the current one again with the same --holdout and --seed"},
			[]string{"--lambda", "--accept-confidence"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckChampion(tt.a)
			if !errors.Is(err, models.ErrMultiTier) {
				t.Fatalf("err = %v, want ErrMultiTier", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("advice %q lacks %q", err, w)
				}
			}
			for _, m := range tt.miss {
				if strings.Contains(err.Error(), m) {
					t.Errorf("advice %q has %q", err, m)
				}
			}
		})
	}
	if err := CheckChampion(&models.Artifact{}); err != nil {
		t.Errorf("a two-tier champion: %v", err)
	}
}
