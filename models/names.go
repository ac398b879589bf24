package models

import (
	"math"
	"sort"

	"github.com/triage-router/triage/features"
)

// NamedWeight is a feature weight with the n-grams that hash to it, so a
// person can read what the router learned.
type NamedWeight struct {
	Index  int32    `json:"index"`
	Weight float64  `json:"weight"`
	Names  []string `json:"names"`
}

// maxNamingExamples bounds the scan for feature names: the top weights
// belong to frequent features, which appear early.
const maxNamingExamples = 5000

// NameTopFeatures records in a.TopFeatures the k largest score weights
// (Artifact.ScoreWeights) by magnitude with up to three n-grams each that hash to them, found by
// describing the training examples. Hashing is one-way, so this is the
// only time names can be recovered.
func NameTopFeatures(a *Artifact, ex []Example, k int) {
	in := make([]features.Input, min(len(ex), maxNamingExamples))
	for i := range in {
		in[i] = ex[i].Input
	}
	NameTopFeaturesFrom(a, in, k)
}

// NameTopFeaturesFrom is NameTopFeatures that describes the given inputs
// (the first 5,000 of them), e.g. Design.Inputs.
func NameTopFeaturesFrom(a *Artifact, in []features.Input, k int) {
	weights := a.ScoreWeights()
	idx := make([]int32, 0, len(weights))
	for i, w := range weights {
		if w != 0 {
			idx = append(idx, int32(i))
		}
	}
	sort.Slice(idx, func(i, j int) bool {
		wi, wj := math.Abs(weights[idx[i]]), math.Abs(weights[idx[j]])
		if wi != wj {
			return wi > wj
		}
		return idx[i] < idx[j]
	})
	if len(idx) > k {
		idx = idx[:k]
	}
	want := map[int32]*NamedWeight{}
	top := make([]NamedWeight, len(idx))
	for i, j := range idx {
		top[i] = NamedWeight{Index: j, Weight: weights[j]}
		want[j] = &top[i]
	}
	ext, err := features.NewExtractor(a.Features)
	if err != nil {
		return
	}
	for i := 0; i < len(in) && i < maxNamingExamples; i++ {
		ext.Describe(in[i], func(j int32, _ float64, name string) {
			nw, ok := want[j]
			if !ok || len(nw.Names) >= 3 {
				return
			}
			for _, n := range nw.Names {
				if n == name {
					return
				}
			}
			nw.Names = append(nw.Names, name)
		})
	}
	a.TopFeatures = top
}
