package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/models"
)

// labelledSet is a log turned into training examples for a tier pair.
type labelledSet struct {
	examples []models.Example
	// missing counts records without both tiers' scores.
	missing int
	// bad counts lines skipped by --skip-bad.
	bad int
	// seen counts outcomes per model over all records, for error messages.
	seen map[string]int
}

// loadLabelled reads the files and keeps the records that have both tiers'
// scores. A tier that appears in no record is an error that lists the
// models that do.
func loadLabelled(paths []string, fast, strong string, opts datasets.ReadOptions) (*labelledSet, error) {
	set := &labelledSet{seen: map[string]int{}}
	for _, p := range paths {
		bad, err := datasets.EachFile(p, opts, func(rec datasets.Record) error {
			for m := range rec.Outcomes {
				set.seen[m]++
			}
			f, s, ok := rec.Scores(fast, strong)
			if !ok {
				set.missing++
				return nil
			}
			ex := models.Example{ID: rec.ID, Input: models.RecordInput(&rec), Fast: f, Strong: s, TS: rec.TS}
			if o := rec.Outcomes[fast]; o.Confidence != nil {
				c := *o.Confidence
				ex.Confidence = &c
			}
			set.examples = append(set.examples, ex)
			return nil
		})
		set.bad += bad
		if err != nil {
			return nil, err
		}
	}
	for _, m := range []struct{ flag, name string }{{"--fast", fast}, {"--strong", strong}} {
		if set.seen[m.name] == 0 {
			return nil, fmt.Errorf("%s model %q appears in no record of %s; models that do: %s", m.flag, m.name, strings.Join(paths, ","), modelList(set.seen))
		}
	}
	if len(set.examples) == 0 {
		return nil, fmt.Errorf("no record of %s has scores for both %q and %q", strings.Join(paths, ","), fast, strong)
	}
	return set, nil
}

func modelList(seen map[string]int) string {
	if len(seen) == 0 {
		return "(none: the records have no outcomes)"
	}
	names := make([]string, 0, len(seen))
	for m := range seen {
		names = append(names, m)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, m := range names {
		parts[i] = fmt.Sprintf("%s (%d)", m, seen[m])
	}
	return strings.Join(parts, ", ")
}

// assignFolds sets each example's fold from a hash of its id, so the same
// id always lands in the same fold for a seed.
func assignFolds(ex []models.Example, seed uint64, k int) {
	for i := range ex {
		ex[i].Fold = datasets.Fold(ex[i].ID, seed, k)
	}
}

// splitHoldout splits by a hash of the id: an id is always on the same side.
func splitHoldout(ex []models.Example, seed uint64, frac float64) (train, held []models.Example) {
	if frac <= 0 {
		return ex, nil
	}
	train = make([]models.Example, 0, len(ex))
	for _, e := range ex {
		if frac > 0 && datasets.InHoldout(e.ID, seed, frac) {
			held = append(held, e)
		} else {
			train = append(train, e)
		}
	}
	return train, held
}

func scoresOf(ex []models.Example, label datasets.Label) (y, weak, strong []float64) {
	y = make([]float64, len(ex))
	weak = make([]float64, len(ex))
	strong = make([]float64, len(ex))
	for i, e := range ex {
		weak[i], strong[i] = e.Fast, e.Strong
		y[i] = label.Of(e.Fast, e.Strong)
	}
	return y, weak, strong
}
