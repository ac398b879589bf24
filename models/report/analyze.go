package report

import (
	"errors"
	"math"

	"github.com/triage-router/triage/classifier"
	"github.com/triage-router/triage/models"
	"github.com/triage-router/triage/models/replay"
)

// Run is one router replayed on one labelled log: what a section of the
// report is made of.
type Run struct {
	// Name labels the router on the page; unique among a page's runs.
	Name string
	// Dir is the folder of the run's files relative to the page; "" puts
	// them next to index.html.
	Dir string
	// Artifact is the router; its policy is the "current" operating point.
	Artifact *models.Artifact
	// Replayer holds the log's requests with this router's p_hard.
	Replayer *replay.Replayer
	// Points are the grid's operating points (replay.Replayer.Sweep).
	Points []replay.OperatingPoint
	// PHard, Label, Fast and Strong are per request, in the log's order:
	// the inputs of models.Evaluate, so the ranking metrics equal
	// `triage eval`'s.
	PHard, Label, Fast, Strong []float64
	// Sources says, for a person, where latency and cost came from.
	Sources []string
	// NoLatency and NoCost say the log has no latency (cost) and none
	// was given: the replay ran on placeholders, so every latency (cost)
	// figure is left empty (NaN) and its plot is replaced by a note
	// naming the flag that fills it.
	NoLatency, NoCost bool
}

// Options tunes Analyze. Zero values mean the defaults.
type Options struct {
	// Resamples is the number of bootstrap resamples; 0 means
	// DefaultResamples.
	Resamples int
	// Seed seeds the bootstrap; 0 means DefaultSeed.
	Seed uint64
	// Bins is the number of reliability bins; 0 means models.ECEBins.
	Bins int
}

// PGRLevels are the shares of the quality gap at which the report compares
// the cheapest and the fastest policies with and without speculation (the
// same levels as CPT).
var PGRLevels = []float64{0.5, 0.8, 0.95, 1}

// Gain compares, at one quality level, the best fast/escalate policy with
// the best policy of any kind.
type Gain struct {
	// PGR is the level; Quality the mean score it stands for.
	PGR, Quality float64
	// The lowest p95 latency and cost reaching Quality, fast/escalate
	// only and with speculation allowed; nil when nothing reaches it.
	P95FastEscalate, P95Any   *replay.OperatingPoint
	CostFastEscalate, CostAny *replay.OperatingPoint
}

// Curve is a line of a plot.
type Curve struct{ X, Y []float64 }

// Section is the analysed run: every figure the page and plots show.
type Section struct {
	Name, Dir string
	Artifact  *models.Artifact
	// N is the number of requests replayed, InSample how many of them
	// the router was trained on (its figures flatter it on those).
	N, InSample int
	// RFast and RStrong are the always-fast and always-strong quality;
	// AlwaysFast and AlwaysStrong those policies replayed, for their cost
	// and latency (what the router saves is measured against them).
	RFast, RStrong           float64
	AlwaysFast, AlwaysStrong replay.OperatingPoint
	// Eval, Random and Oracle are models.Evaluate and its baselines.
	Eval, Random, Oracle models.Report
	APGR                 Interval
	// AIQ over every operating point, and over fast/escalate ones only.
	AIQ, AIQFastEscalate float64
	// Current is the artifact's own policy replayed, with intervals.
	Current          replay.OperatingPoint
	CurrentIntervals PointIntervals
	Points           []replay.OperatingPoint
	// FrontP95 and FrontCost are the indices into Points of the Pareto
	// fronts of quality against p95 latency and against cost.
	FrontP95, FrontCost []int
	Gains               []Gain
	Sources             []string
	// PHardBins is the reliability of p_hard against the label.
	PHardBins []Bin
	// ConfidenceBins is the reliability of the calibrated fast
	// confidence against the fast answer being correct (score >= 0.5),
	// on the requests that have one; ConfidenceECE is NaN without any.
	ConfidenceBins []Bin
	ConfidenceECE  float64
	ConfidenceN    int
	// RouterCurve, OracleCurve: quality against strong share.
	RouterCurve, OracleCurve Curve
	// Figures are filled by Write.
	Figures []Figure
	// NoLatency and NoCost are the run's: those figures are empty.
	NoLatency, NoCost bool
}

// Analyze computes a section's figures.
func Analyze(run *Run, opts Options) (*Section, error) {
	if run.Replayer == nil || run.Artifact == nil {
		return nil, errors.New("report: run needs an artifact and a replayer")
	}
	n := len(run.PHard)
	if n == 0 || len(run.Label) != n || len(run.Fast) != n || len(run.Strong) != n {
		return nil, errors.New("report: run needs p_hard, label, fast and strong scores for every request")
	}
	if opts.Resamples <= 0 {
		opts.Resamples = DefaultResamples
	}
	if opts.Seed == 0 {
		opts.Seed = DefaultSeed
	}
	if opts.Bins <= 0 {
		opts.Bins = models.ECEBins
	}
	rp := run.Replayer
	s := &Section{Name: run.Name, Dir: run.Dir, Artifact: run.Artifact, N: rp.Len(), Points: run.Points, Sources: run.Sources,
		NoLatency: run.NoLatency, NoCost: run.NoCost}
	s.RFast, s.RStrong = rp.Baselines()
	// p_hard is finite (the replayer refuses others), so no request is
	// above +Inf and every one is above -Inf.
	inf := math.Inf(1)
	s.AlwaysFast = rp.Point(models.Policy{SpeculateAbove: inf, EscalateAbove: inf})
	s.AlwaysStrong = rp.Point(models.Policy{SpeculateAbove: -inf, EscalateAbove: -inf})
	s.Eval = models.Evaluate(run.PHard, run.Label, run.Fast, run.Strong)
	s.Random = models.EvaluateRandom(run.Label, run.Fast, run.Strong)
	s.Oracle = models.EvaluateOracle(run.Label, run.Fast, run.Strong)
	s.APGR = BootstrapAPGR(run.PHard, run.Fast, run.Strong, opts.Resamples, opts.Seed)

	// The current operating point and its sampling noise.
	s.Current = rp.Point(run.Artifact.Policy)
	reqs := rp.Requests()
	strong := make([]float64, len(reqs))
	for i := range reqs {
		strong[i] = reqs[i].StrongScore
	}
	s.CurrentIntervals = BootstrapPoint(rp.Outcomes(nil, run.Artifact.Policy), strong, opts.Resamples, opts.Seed+1)
	s.blankUnknown()

	all := make([]Point, 0, len(s.Points)+2)
	var fe []Point
	p95 := make([]Point, len(s.Points))
	for i, op := range s.Points {
		all = append(all, Point{op.CostPer1k, op.Quality})
		if op.Kind == replay.KindFastEscalate {
			fe = append(fe, Point{op.CostPer1k, op.Quality})
		}
		p95[i] = Point{op.LatencyP95MS, op.Quality}
	}
	s.AIQ, s.AIQFastEscalate = AIQ(all), AIQ(fe)
	s.FrontCost = ParetoFront(all)
	s.FrontP95 = ParetoFront(p95)
	s.Gains = gains(s.Points, s.RFast, s.RStrong)

	s.PHardBins = Reliability(run.PHard, run.Label, opts.Bins)
	var conf, correct []float64
	for i := range reqs {
		if reqs[i].HasConfidence {
			conf = append(conf, reqs[i].Confidence)
			correct = append(correct, b2f(reqs[i].FastScore >= 0.5))
		}
	}
	s.ConfidenceN = len(conf)
	s.ConfidenceECE = math.NaN()
	if len(conf) > 0 {
		s.ConfidenceBins = Reliability(conf, correct, opts.Bins)
		s.ConfidenceECE = classifier.ECE(conf, correct, opts.Bins)
	}

	c, q, _ := classifier.PGRCurve(run.PHard, run.Fast, run.Strong)
	s.RouterCurve = thin(c, q, 400)
	oracle := make([]float64, n)
	for i := range oracle {
		// The oracle's score of models.EvaluateOracle.
		oracle[i] = (run.Strong[i] - run.Fast[i]) + 1e-3*(1-run.Fast[i])
	}
	c, q, _ = classifier.PGRCurve(oracle, run.Fast, run.Strong)
	s.OracleCurve = thin(c, q, 400)
	return s, nil
}

// blankUnknown empties the latency or cost figures of a replay that ran
// on placeholders, so that nothing downstream (CSV, metrics.json, fronts,
// AIQ, plots) reads them as measured.
func (s *Section) blankUnknown() {
	nan := math.NaN()
	blank := func(op *replay.OperatingPoint) {
		if s.NoLatency {
			op.LatencyMeanMS, op.LatencyP50MS, op.LatencyP95MS, op.LatencyP99MS = nan, nan, nan, nan
		}
		if s.NoCost {
			op.CostPer1k = nan
		}
	}
	for i := range s.Points {
		blank(&s.Points[i])
	}
	blank(&s.Current)
	blank(&s.AlwaysFast)
	blank(&s.AlwaysStrong)
	if s.NoLatency {
		s.CurrentIntervals.LatencyP95MS = Interval{Lo: nan, Hi: nan}
	}
	if s.NoCost {
		s.CurrentIntervals.CostPer1k = Interval{Lo: nan, Hi: nan}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// thin keeps about max points of a curve, always its ends.
func thin(x, y []float64, maxN int) Curve {
	if len(x) <= maxN {
		return Curve{x, y}
	}
	step := float64(len(x)-1) / float64(maxN-1)
	out := Curve{make([]float64, 0, maxN), make([]float64, 0, maxN)}
	for k := 0; k < maxN; k++ {
		i := int(math.Round(float64(k) * step))
		out.X = append(out.X, x[i])
		out.Y = append(out.Y, y[i])
	}
	return out
}

// gains finds, per PGR level, the lowest p95 and cost with and without
// speculation.
func gains(pts []replay.OperatingPoint, rFast, rStrong float64) []Gain {
	out := make([]Gain, len(PGRLevels))
	for k, lv := range PGRLevels {
		g := Gain{PGR: lv, Quality: rFast + lv*(rStrong-rFast)}
		for i := range pts {
			op := &pts[i]
			// A hair of slack so "the same quality" is not lost to float
			// summation order.
			if op.Quality < g.Quality-1e-12 {
				continue
			}
			lower := func(best *replay.OperatingPoint, v, bv float64) bool {
				return best == nil || v < bv || (v == bv && op.Quality > best.Quality)
			}
			if !math.IsNaN(op.LatencyP95MS) && lower(g.P95Any, op.LatencyP95MS, val(g.P95Any, true)) {
				g.P95Any = op
			}
			if !math.IsNaN(op.CostPer1k) && lower(g.CostAny, op.CostPer1k, val(g.CostAny, false)) {
				g.CostAny = op
			}
			if op.Kind != replay.KindFastEscalate {
				continue
			}
			if !math.IsNaN(op.LatencyP95MS) && lower(g.P95FastEscalate, op.LatencyP95MS, val(g.P95FastEscalate, true)) {
				g.P95FastEscalate = op
			}
			if !math.IsNaN(op.CostPer1k) && lower(g.CostFastEscalate, op.CostPer1k, val(g.CostFastEscalate, false)) {
				g.CostFastEscalate = op
			}
		}
		out[k] = g
	}
	return out
}

func val(op *replay.OperatingPoint, p95 bool) float64 {
	if op == nil {
		return math.Inf(1)
	}
	if p95 {
		return op.LatencyP95MS
	}
	return op.CostPer1k
}
