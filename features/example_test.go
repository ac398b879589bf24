package features_test

import (
	"fmt"

	"github.com/triage-router/triage/features"
)

func Example() {
	spec := features.DefaultSpec()
	spec.CharNgrams = [2]int{} // keep the listing short
	ex, err := features.NewExtractor(spec)
	if err != nil {
		panic(err)
	}
	in := features.Input{
		Prompt: "Is 7 prime?",
		Meta:   map[string]string{"subject": "math"},
	}

	// Extract is the serving path: reuse the vector, no allocation.
	var v features.Vector
	ex.Extract(&v, in)
	fmt.Println("dim", spec.Dim(), "features", len(v.Idx))

	// Describe names each feature, for explanations.
	ex.Describe(in, func(idx int32, val float64, name string) {
		fmt.Printf("%-18s %.3f\n", name, val)
	})
	// Output:
	// dim 266249 features 11
	// word:is            0.447
	// word:7             0.447
	// word:prime         0.447
	// word:is 7          0.447
	// word:7 prime       0.447
	// num:len_chars      0.155
	// num:len_tokens     0.099
	// num:digit_share    0.091
	// num:questions      0.173
	// num:turns          0.173
	// meta:subject=math  1.000
}
