package report

import "math"

// Bin is one bin of a reliability diagram.
type Bin struct {
	// Lo and Hi bound the predicted probabilities of the bin.
	Lo, Hi float64
	// N is the number of predictions in the bin.
	N int
	// MeanP is their mean predicted probability and Rate the observed
	// frequency of the event; both NaN when the bin is empty.
	MeanP, Rate float64
}

// Reliability bins predictions p of the 0/1 outcomes y into bins equal
// widths over [0,1] (a prediction of exactly 1 falls in the last bin, as
// in the ECE of classifier), so a calibrated forecaster's bins lie on the
// diagonal.
func Reliability(p, y []float64, bins int) []Bin {
	if len(p) != len(y) {
		panic("report: Reliability: p and y differ in length")
	}
	bins = max(1, bins)
	out := make([]Bin, bins)
	sp := make([]float64, bins)
	sy := make([]float64, bins)
	for i := range out {
		out[i].Lo = float64(i) / float64(bins)
		out[i].Hi = float64(i+1) / float64(bins)
	}
	for i, v := range p {
		if math.IsNaN(v) {
			continue
		}
		b := int(v * float64(bins))
		b = max(0, min(bins-1, b))
		out[b].N++
		sp[b] += v
		sy[b] += y[i]
	}
	for i := range out {
		if out[i].N == 0 {
			out[i].MeanP, out[i].Rate = math.NaN(), math.NaN()
			continue
		}
		out[i].MeanP = sp[i] / float64(out[i].N)
		out[i].Rate = sy[i] / float64(out[i].N)
	}
	return out
}
