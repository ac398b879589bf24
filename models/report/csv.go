package report

import (
	"bufio"
	"io"
	"math"
	"strconv"

	"github.com/triage-router/triage/models/replay"
)

// CurvesColumns are the columns of curves.csv: the fixed ones of docs/design.md
// in their order, then the extras.
var CurvesColumns = []string{
	"speculate_above", "escalate_above", "accept_confidence", "strong_share",
	"quality", "pgr", "cost_per_1k", "latency_mean_ms", "latency_p50_ms",
	"latency_p95_ms", "latency_p99_ms",
	// Extras.
	"fast_share", "speculate_share", "escalate_share", "accepted_share",
	"kind", "pareto_p95", "pareto_cost",
}

// WriteCurvesCSV writes one row per operating point. Numbers are written
// in the shortest form that reads back to the same float64 (so thresholds
// can be copied into an artifact exactly); a figure that is undefined or
// unknown (NaN: PGR when the tiers tie, latency of a log without any) is
// left empty. front sets mark the points on the p95 and cost Pareto
// fronts.
func WriteCurvesCSV(w io.Writer, pts []replay.OperatingPoint, frontP95, frontCost []int) error {
	onP95 := make([]bool, len(pts))
	onCost := make([]bool, len(pts))
	for _, i := range frontP95 {
		onP95[i] = true
	}
	for _, i := range frontCost {
		onCost[i] = true
	}
	bw := bufio.NewWriterSize(w, 1<<16)
	for i, c := range CurvesColumns {
		if i > 0 {
			bw.WriteByte(',')
		}
		bw.WriteString(c)
	}
	bw.WriteByte('\n')
	var buf []byte
	for i := range pts {
		op := &pts[i]
		buf = buf[:0]
		for k, v := range []float64{
			op.Policy.SpeculateAbove, op.Policy.EscalateAbove, op.Policy.AcceptConfidence, op.StrongShare,
			op.Quality, op.PGR, op.CostPer1k, op.LatencyMeanMS, op.LatencyP50MS,
			op.LatencyP95MS, op.LatencyP99MS,
			op.FastShare, op.SpeculateShare, op.EscalateShare, op.AcceptedShare,
		} {
			if k > 0 {
				buf = append(buf, ',')
			}
			if !math.IsNaN(v) {
				buf = strconv.AppendFloat(buf, v, 'g', -1, 64)
			}
		}
		buf = append(buf, ',')
		buf = append(buf, op.Kind...)
		buf = append(buf, ',')
		buf = strconv.AppendBool(buf, onP95[i])
		buf = append(buf, ',')
		buf = strconv.AppendBool(buf, onCost[i])
		buf = append(buf, '\n')
		if _, err := bw.Write(buf); err != nil {
			return err
		}
	}
	return bw.Flush()
}
