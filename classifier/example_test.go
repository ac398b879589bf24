package classifier_test

import (
	"fmt"

	"github.com/triage-router/triage/classifier"
)

func ExampleFit() {
	// Feature 0 marks long prompts, feature 1 short ones. Of 10 long
	// prompts 8 were hard (label 1); of 10 short ones, 1.
	X := classifier.NewSparse(2)
	var y []float64
	for i := range 10 {
		X.AppendRow([]int32{0}, []float64{1})
		y = append(y, float64(min(1, i/2))) // 0, 0, then 1s: 8 of 10
		X.AppendRow([]int32{1}, []float64{1})
		y = append(y, float64(i/9)) // one 1 in 10
	}
	m, err := classifier.Fit(X, y, nil, classifier.Options{L2: 1e-4})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("p(hard | long)  = %.2f\n", m.Prob([]int32{0}, []float64{1}))
	fmt.Printf("p(hard | short) = %.2f\n", m.Prob([]int32{1}, []float64{1}))
	// Output:
	// p(hard | long)  = 0.80
	// p(hard | short) = 0.10
}

func ExampleAPGR() {
	weak := []float64{1, 0, 1, 0}   // the fast model fails prompts 1 and 3
	strong := []float64{1, 1, 1, 1} // the strong one answers everything
	oracle := []float64{0, 1, 0, 1} // scores the failures highest
	constant := []float64{0, 0, 0, 0}
	fmt.Printf("oracle APGR %.3f, CPT(50%%) %.2f\n", classifier.APGR(oracle, weak, strong), classifier.CPT(oracle, weak, strong, 0.5))
	fmt.Printf("random APGR %.3f, CPT(50%%) %.2f\n", classifier.APGR(constant, weak, strong), classifier.CPT(constant, weak, strong, 0.5))
	// Output:
	// oracle APGR 0.750, CPT(50%) 0.25
	// random APGR 0.500, CPT(50%) 0.50
}

func ExampleCalibration_Apply() {
	c := classifier.Calibration{Method: classifier.CalibPlatt, A: 2, B: -1}
	for _, z := range []float64{-2, 0.5, 3} {
		fmt.Printf("z %4.1f -> p %.3f\n", z, c.Apply(z))
	}
	// Output:
	// z -2.0 -> p 0.007
	// z  0.5 -> p 0.500
	// z  3.0 -> p 0.993
}

func ExampleFitIsotonic() {
	z := []float64{-2, -1, 0, 1, 2, 3}
	y := []float64{0, 1, 0, 1, 1, 1}
	c, err := classifier.FitIsotonic(z, y, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("knots", c.X, "values", c.Y)
	fmt.Printf("p(-0.75) = %.3f\n", c.Apply(-0.75))
	// Output:
	// knots [-2 -0.5 1 2 3] values [0 0.5 1 1 1]
	// p(-0.75) = 0.417
}
