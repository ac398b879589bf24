package replay

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/triage-router/triage/models"
)

// handLog is a small log covering every decision kind under handPolicy
// (speculate_above 0.3, escalate_above 0.7, accept_confidence 0.8). Each
// line's comment works out its replay by hand; TestReplayHandWorked checks
// the totals below against them.
var handPolicy = models.Policy{SpeculateAbove: 0.3, EscalateAbove: 0.7, AcceptConfidence: 0.8}

func handLog() []Request {
	return []Request{
		// fast (0.10 <= 0.3): score 1, 200 ms, $0.001.
		{ID: "fast", PHard: 0.10, FastScore: 1, StrongScore: 1, FastLatencyMS: 200, StrongLatencyMS: 1000, FastCostUSD: 0.001, StrongCostUSD: 0.010, Confidence: 0.99, HasConfidence: true},
		// fast at the threshold (p_hard == speculate_above is fast): score 0, 400 ms, $0.002.
		{ID: "fast-at-threshold", PHard: 0.30, FastScore: 0, StrongScore: 1, FastLatencyMS: 400, StrongLatencyMS: 1200, FastCostUSD: 0.002, StrongCostUSD: 0.020},
		// speculate, strong arrives first (1000 < 3000): strong kept, score 1, 1000 ms;
		// fast cancelled at 1000 of its 3000 ms: prorata $0.010 + 0.003*1/3 = $0.011, full $0.013.
		{ID: "strong-first", PHard: 0.40, FastScore: 0, StrongScore: 1, FastLatencyMS: 3000, StrongLatencyMS: 1000, FastCostUSD: 0.003, StrongCostUSD: 0.010, Confidence: 0.9, HasConfidence: true},
		// speculate, fast first and accepted (0.85 >= 0.8): score 1, 500 ms;
		// strong cancelled at 500 of 2000 ms: prorata $0.002 + 0.040/4 = $0.012, full $0.042.
		{ID: "fast-accepted", PHard: 0.50, FastScore: 1, StrongScore: 1, FastLatencyMS: 500, StrongLatencyMS: 2000, FastCostUSD: 0.002, StrongCostUSD: 0.040, Confidence: 0.85, HasConfidence: true},
		// speculate, tie in arrival (1000 == 1000) counts as fast first; confidence
		// 0.8 == accept is accepted: score 1, 1000 ms; the strong call ran its
		// whole latency, so $0.004 + $0.020 = $0.024 either way.
		{ID: "tie-accepted", PHard: 0.55, FastScore: 1, StrongScore: 1, FastLatencyMS: 1000, StrongLatencyMS: 1000, FastCostUSD: 0.004, StrongCostUSD: 0.020, Confidence: 0.8, HasConfidence: true},
		// speculate, fast first but rejected (0.5 < 0.8): strong awaited, score 1,
		// 1500 ms, both in full $0.002 + $0.030 = $0.032.
		{ID: "fast-rejected", PHard: 0.60, FastScore: 0, StrongScore: 1, FastLatencyMS: 600, StrongLatencyMS: 1500, FastCostUSD: 0.002, StrongCostUSD: 0.030, Confidence: 0.5, HasConfidence: true},
		// speculate at the upper threshold (0.7 <= escalate_above), no confidence: the gate
		// never accepts, strong awaited: score 0, 900 ms, $0.001 + $0.009 = $0.010.
		{ID: "no-confidence", PHard: 0.70, FastScore: 1, StrongScore: 0, FastLatencyMS: 300, StrongLatencyMS: 900, FastCostUSD: 0.001, StrongCostUSD: 0.009},
		// escalate: score 1, 800 ms, $0.012.
		{ID: "escalate", PHard: 0.80, FastScore: 1, StrongScore: 1, FastLatencyMS: 250, StrongLatencyMS: 800, FastCostUSD: 0.001, StrongCostUSD: 0.012, Confidence: 0.99, HasConfidence: true},
		// escalate: score 0, 2500 ms, $0.050.
		{ID: "escalate-fails", PHard: 0.95, FastScore: 0, StrongScore: 0, FastLatencyMS: 700, StrongLatencyMS: 2500, FastCostUSD: 0.003, StrongCostUSD: 0.050},
	}
}

func TestReplayRequestHandWorked(t *testing.T) {
	// Expected values: the comments of handLog.
	want := map[string]struct {
		d                    models.Decision
		strong, accepted     bool
		score, lat, pro, ful float64
	}{
		"fast":              {models.Fast, false, false, 1, 200, 0.001, 0.001},
		"fast-at-threshold": {models.Fast, false, false, 0, 400, 0.002, 0.002},
		"strong-first":      {models.Speculate, true, false, 1, 1000, 0.011, 0.013},
		"fast-accepted":     {models.Speculate, false, true, 1, 500, 0.012, 0.042},
		"tie-accepted":      {models.Speculate, false, true, 1, 1000, 0.024, 0.024},
		"fast-rejected":     {models.Speculate, true, false, 1, 1500, 0.032, 0.032},
		"no-confidence":     {models.Speculate, true, false, 0, 900, 0.010, 0.010},
		"escalate":          {models.Escalate, true, false, 1, 800, 0.012, 0.012},
		"escalate-fails":    {models.Escalate, true, false, 0, 2500, 0.050, 0.050},
	}
	for _, r := range handLog() {
		t.Run("request "+r.ID+" replays as worked by hand", func(t *testing.T) {
			w := want[r.ID]
			for _, b := range []struct {
				billing CancelBilling
				cost    float64
			}{{BillProrata, w.pro}, {BillFull, w.ful}} {
				got := ReplayRequest(&r, handPolicy, b.billing)
				if got.Decision != w.d || got.KeptStrong != w.strong || got.Accepted != w.accepted {
					t.Errorf("%s: got decision %s strong %v accepted %v, want %s %v %v", b.billing, got.Decision, got.KeptStrong, got.Accepted, w.d, w.strong, w.accepted)
				}
				if got.Score != w.score || got.LatencyMS != w.lat || math.Abs(got.CostUSD-b.cost) > 1e-12 {
					t.Errorf("%s: got score %v latency %v cost %v, want %v %v %v", b.billing, got.Score, got.LatencyMS, got.CostUSD, w.score, w.lat, b.cost)
				}
			}
		})
	}
}

func TestReplayHandWorked(t *testing.T) {
	// Totals over handLog, by hand:
	//   kept scores 1,0,1,1,1,1,0,1,0 = 6 of 9; r_fast = 5/9, r_strong = 7/9,
	//   so PGR = (6/9 - 5/9) / (7/9 - 5/9) = 0.5.
	//   strong kept: strong-first, fast-rejected, no-confidence, 2 escalates = 5/9.
	//   decisions: 2 fast, 5 speculate, 2 escalate; 2 accepted.
	//   latencies sorted: 200 400 500 800 900 1000 1000 1500 2500, sum 8800;
	//   nearest rank of 9: p50 = 5th = 900, p95 = ceil(8.55) = 9th = 2500, p99 = 2500.
	//   cost prorata: .001+.002+.011+.012+.024+.032+.010+.012+.050 = .154, per 1k = 154/9;
	//   cost full adds .002 (strong-first) and .030 (fast-accepted): .186, per 1k = 186/9.
	tests := []struct {
		billing CancelBilling
		costK   float64
	}{
		{BillProrata, 154.0 / 9},
		{BillFull, 186.0 / 9},
	}
	for _, tc := range tests {
		t.Run("billing "+string(tc.billing)+" gives the hand-worked totals", func(t *testing.T) {
			rp, err := NewReplayer(handLog(), tc.billing)
			if err != nil {
				t.Fatal(err)
			}
			got := rp.Point(handPolicy)
			want := OperatingPoint{
				Policy: handPolicy, Kind: KindCombined, N: 9,
				StrongShare: 5.0 / 9, Quality: 6.0 / 9, PGR: 0.5, CostPer1k: tc.costK,
				LatencyMeanMS: 8800.0 / 9, LatencyP50MS: 900, LatencyP95MS: 2500, LatencyP99MS: 2500,
				FastShare: 2.0 / 9, SpeculateShare: 5.0 / 9, EscalateShare: 2.0 / 9, AcceptedShare: 2.0 / 9,
			}
			checkPoint(t, got, want, 1e-12)
			if f, s := rp.Baselines(); math.Abs(f-5.0/9) > 1e-15 || math.Abs(s-7.0/9) > 1e-15 {
				t.Errorf("got baselines %v %v, want 5/9 7/9", f, s)
			}
		})
	}
}

func TestReplayEndsOfTheScale(t *testing.T) {
	rp, err := NewReplayer(handLog(), BillProrata)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		p      models.Policy
		strong float64
		q      float64
		kind   Kind
	}{
		// Always fast: fast scores 1,0,0,1,1,0,1,1,0 = 5/9.
		{"all fast keeps every fast answer", models.Policy{SpeculateAbove: 1, EscalateAbove: 1, AcceptConfidence: 1}, 0, 5.0 / 9, KindFastEscalate},
		// Always strong: 7/9.
		{"all strong keeps every strong answer", models.Policy{SpeculateAbove: 0, EscalateAbove: 0, AcceptConfidence: 1}, 1, 7.0 / 9, KindFastEscalate},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := rp.Point(tc.p)
			if got.StrongShare != tc.strong || math.Abs(got.Quality-tc.q) > 1e-15 || got.Kind != tc.kind {
				t.Errorf("got strong %v quality %v kind %s, want %v %v %s", got.StrongShare, got.Quality, got.Kind, tc.strong, tc.q, tc.kind)
			}
		})
	}
}

func checkPoint(t *testing.T, got, want OperatingPoint, tol float64) {
	t.Helper()
	if got.Policy != want.Policy || got.Kind != want.Kind || got.N != want.N {
		t.Errorf("got policy %+v kind %s n %d, want %+v %s %d", got.Policy, got.Kind, got.N, want.Policy, want.Kind, want.N)
	}
	for _, f := range []struct {
		name      string
		got, want float64
	}{
		{"strong_share", got.StrongShare, want.StrongShare},
		{"quality", got.Quality, want.Quality},
		{"pgr", got.PGR, want.PGR},
		{"cost_per_1k", got.CostPer1k, want.CostPer1k},
		{"latency_mean", got.LatencyMeanMS, want.LatencyMeanMS},
		{"latency_p50", got.LatencyP50MS, want.LatencyP50MS},
		{"latency_p95", got.LatencyP95MS, want.LatencyP95MS},
		{"latency_p99", got.LatencyP99MS, want.LatencyP99MS},
		{"fast_share", got.FastShare, want.FastShare},
		{"speculate_share", got.SpeculateShare, want.SpeculateShare},
		{"escalate_share", got.EscalateShare, want.EscalateShare},
		{"accepted_share", got.AcceptedShare, want.AcceptedShare},
	} {
		if math.IsNaN(f.got) && math.IsNaN(f.want) {
			continue
		}
		if !(math.Abs(f.got-f.want) <= tol*math.Max(1, math.Abs(f.want))) {
			t.Errorf("%s: got %v, want %v", f.name, f.got, f.want)
		}
	}
}

// randomLog draws a log with ties in p_hard and latency, some requests
// without confidence, and strong sometimes faster than fast.
func randomLog(seed uint64, n int, distinctLatency bool) []Request {
	rng := rand.New(rand.NewPCG(seed, 7))
	out := make([]Request, n)
	for i := range out {
		r := Request{
			PHard:     math.Round(rng.Float64()*40) / 40, // ties on purpose
			FastScore: float64(rng.IntN(2)), StrongScore: float64(rng.IntN(2)),
			FastLatencyMS: 300, StrongLatencyMS: 1500,
			FastCostUSD: 0.001, StrongCostUSD: 0.01,
		}
		if distinctLatency {
			r.FastLatencyMS = math.Round(100 + 2000*rng.ExpFloat64()*0.3)
			r.StrongLatencyMS = math.Round(500 + 1500*rng.Float64())
			r.FastCostUSD = 0.001 * rng.Float64()
			r.StrongCostUSD = 0.02 * rng.Float64()
		}
		if rng.Float64() < 0.8 {
			r.HasConfidence = true
			r.Confidence = math.Round(rng.Float64()*20) / 20
		}
		out[i] = r
	}
	return out
}

func TestSweepMatchesPointByPoint(t *testing.T) {
	tests := []struct {
		name     string
		seed     uint64
		n        int
		distinct bool
		billing  CancelBilling
	}{
		{"per-request latencies with prorata billing", 1, 500, true, BillProrata},
		{"per-request latencies with full billing", 2, 300, true, BillFull},
		{"default latencies (two distinct values)", 3, 400, false, BillProrata},
		{"a log of one request", 4, 1, true, BillProrata},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rp, err := NewReplayer(randomLog(tc.seed, tc.n, tc.distinct), tc.billing)
			if err != nil {
				t.Fatal(err)
			}
			g := rp.QuantileGrid(12, 5)
			pts := rp.Sweep(g, SweepOptions{})
			if len(pts) == 0 {
				t.Fatal("no points")
			}
			seen := map[models.Policy]bool{}
			for _, got := range pts {
				if seen[got.Policy] {
					t.Errorf("policy %+v appears twice", got.Policy)
				}
				seen[got.Policy] = true
				checkPoint(t, got, rp.Point(got.Policy), 1e-9)
			}
			// Every threshold pair and accept value is covered once.
			nt, na := len(g.Thresholds), max(1, len(g.Accept))
			if want := nt + na*nt*(nt-1)/2; tc.n > 1 && len(pts) != want {
				t.Errorf("got %d points, want %d", len(pts), want)
			}
		})
	}
}

func TestSweepWithoutPercentilesLeavesThemNaN(t *testing.T) {
	rp, err := NewReplayer(randomLog(5, 100, true), BillProrata)
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range rp.Sweep(rp.QuantileGrid(5, 3), SweepOptions{NoPercentiles: true}) {
		want := rp.Point(op.Policy)
		if !math.IsNaN(op.LatencyP95MS) {
			t.Fatalf("got p95 %v, want NaN", op.LatencyP95MS)
		}
		want.LatencyP50MS, want.LatencyP95MS, want.LatencyP99MS = math.NaN(), math.NaN(), math.NaN()
		checkPoint(t, op, want, 1e-9)
	}
}

func TestQuantileGrid(t *testing.T) {
	rp, err := NewReplayer(randomLog(6, 1000, true), BillProrata)
	if err != nil {
		t.Fatal(err)
	}
	g := rp.QuantileGrid(20, 4)
	t.Run("it starts below every p_hard and ends above", func(t *testing.T) {
		if b := rp.boundary(g.Thresholds[0]); b != 0 {
			t.Errorf("first threshold %v keeps %d below, want 0", g.Thresholds[0], b)
		}
		if b := rp.boundary(g.Thresholds[len(g.Thresholds)-1]); b != rp.Len() {
			t.Errorf("last threshold keeps %d below, want %d", b, rp.Len())
		}
	})
	t.Run("thresholds rise and cut distinct sets", func(t *testing.T) {
		last := -1
		for _, th := range g.Thresholds {
			b := rp.boundary(th)
			if b <= last {
				t.Errorf("threshold %v keeps %d below, not more than the previous %d", th, b, last)
			}
			last = b
		}
		// p_hard takes 41 values, so 20 cuts stay distinct: 21 thresholds.
		if len(g.Thresholds) != 21 {
			t.Errorf("got %d thresholds, want 21", len(g.Thresholds))
		}
	})
	t.Run("accept values rise within [0,1]", func(t *testing.T) {
		if len(g.Accept) == 0 || !slices.IsSorted(g.Accept) || g.Accept[0] < 0 || g.Accept[len(g.Accept)-1] > 1 {
			t.Errorf("got accept values %v", g.Accept)
		}
	})
	t.Run("a log without confidence has no accept values", func(t *testing.T) {
		reqs := randomLog(7, 50, false)
		for i := range reqs {
			reqs[i].HasConfidence = false
		}
		rp, err := NewReplayer(reqs, BillProrata)
		if err != nil {
			t.Fatal(err)
		}
		if g := rp.QuantileGrid(10, 10); len(g.Accept) != 0 {
			t.Errorf("got accept values %v, want none", g.Accept)
		}
	})
}

func TestPercentileIsNearestRank(t *testing.T) {
	tests := []struct {
		name string
		xs   []float64
		p    float64
		want float64
	}{
		// ceil(0.5*4) = 2nd smallest.
		{"median of four is the second", []float64{4, 1, 3, 2}, 0.5, 2},
		// ceil(0.95*10) = 10th.
		{"p95 of ten is the largest", []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 0.95, 10},
		// ceil(0.95*100) = 95th.
		{"p95 of 1..100 is 95", seq(100), 0.95, 95},
		{"p99 of 1..100 is 99", seq(100), 0.99, 99},
		{"ties are counted", []float64{5, 5, 5, 1}, 0.5, 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Percentile(slices.Clone(tc.xs), tc.p); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func seq(n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[n-1-i] = float64(i + 1)
	}
	return out
}

func TestNewReplayerRejectsBadRequests(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Request)
	}{
		{"a NaN p_hard", func(r *Request) { r.PHard = math.NaN() }},
		{"a score above 1", func(r *Request) { r.FastScore = 2 }},
		{"a negative latency", func(r *Request) { r.StrongLatencyMS = -1 }},
		{"an infinite cost", func(r *Request) { r.FastCostUSD = math.Inf(1) }},
		{"a NaN confidence", func(r *Request) { r.HasConfidence, r.Confidence = true, math.NaN() }},
	}
	for _, tc := range tests {
		t.Run("it rejects "+tc.name, func(t *testing.T) {
			reqs := handLog()
			tc.mod(&reqs[3])
			if _, err := NewReplayer(reqs, BillProrata); err == nil {
				t.Error("got no error")
			}
		})
	}
	if _, err := NewReplayer(nil, BillProrata); err != ErrNoRequests {
		t.Errorf("empty log: got %v, want ErrNoRequests", err)
	}
}

func BenchmarkSweep(b *testing.B) {
	// 14k requests, like RouteLLM MMLU, with per-request latencies: the
	// expensive case for the percentiles.
	reqs := randomLog(8, 14042, true)
	rng := rand.New(rand.NewPCG(8, 8))
	for i := range reqs {
		reqs[i].PHard = rng.Float64() // distinct, so the grid has every cut
	}
	rp, err := NewReplayer(reqs, BillProrata)
	if err != nil {
		b.Fatal(err)
	}
	g := rp.QuantileGrid(100, 10)
	b.ReportAllocs()
	var n int
	for b.Loop() {
		n = len(rp.Sweep(g, SweepOptions{}))
	}
	b.ReportMetric(float64(n), "points")
}
