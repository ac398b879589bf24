package serve

import (
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/models"
	"github.com/triage-router/triage/serve/proxy"
)

// Defaults of DriftConfig.
const (
	// DefaultDriftWindow is how many of the latest routed requests the
	// decision shares and mean p_hard are computed over.
	DefaultDriftWindow = 10000
	// DefaultDriftFeedbackWindow is how many of the latest scored
	// feedbacks per tier the tier accuracy is computed over.
	DefaultDriftFeedbackWindow = 2000
)

// DriftConfig sizes the sliding windows of the drift gauges on /metrics.
type DriftConfig struct {
	// Window is the number of latest routed requests behind
	// triage_drift_decision_share and triage_drift_mean_p_hard.
	Window int `yaml:"window"`
	// FeedbackWindow is the number of latest scored feedbacks per tier
	// behind triage_drift_tier_accuracy.
	FeedbackWindow int `yaml:"feedback_window"`
}

func (d DriftConfig) validate() error {
	if d.Window < 1 || d.Window > 10_000_000 {
		return fmt.Errorf("drift.window is %d, want 1..10000000 routed requests", d.Window)
	}
	if d.FeedbackWindow < 1 || d.FeedbackWindow > 10_000_000 {
		return fmt.Errorf("drift.feedback_window is %d, want 1..10000000 feedbacks", d.FeedbackWindow)
	}
	return nil
}

// decisionIndex orders the decisions in the windows' counters.
var decisionOrder = [3]models.Decision{models.Fast, models.Speculate, models.Escalate}

func decisionIndex(d models.Decision) int {
	switch d {
	case models.Fast:
		return 0
	case models.Speculate:
		return 1
	}
	return 2
}

// ring is a fixed-size sliding window of values with their running sum.
// The sum is recomputed each time the ring wraps, so rounding from
// adding and subtracting never accumulates past one window.
type ring struct {
	v    []float64
	n    int // values held, up to len(v)
	next int
	sum  float64
}

func newRing(size int) ring { return ring{v: make([]float64, size)} }

// push adds x and reports whether it evicted the oldest value.
func (r *ring) push(x float64) (evicted bool) {
	if r.n == len(r.v) {
		r.sum -= r.v[r.next]
		evicted = true
	} else {
		r.n++
	}
	r.v[r.next] = x
	r.sum += x
	r.next++
	if r.next == len(r.v) {
		r.next = 0
		r.sum = 0
		for _, v := range r.v[:r.n] {
			r.sum += v
		}
	}
	return evicted
}

func (r *ring) mean() float64 {
	if r.n == 0 {
		return math.NaN()
	}
	return r.sum / float64(r.n)
}

func (r *ring) reset() { r.n, r.next, r.sum = 0, 0, 0 }

// drift keeps the sliding windows. One mutex: each update is a few
// stores, far below the cost of the request around it.
type drift struct {
	mu      sync.Mutex
	version string
	pHard   ring // p_hard of the latest routed requests
	kinds   []uint8
	counts  [3]int
	// tier holds the scores of the latest feedback per tier of the
	// serving model, cheapest first, labelled tierLabels (fast and strong
	// for a two-tier model, the tier names for an N-tier one).
	tier       []ring
	tierLabels []string
	fbWindow   int
	// noPHard is an N-tier model serving: it has no p_hard, so the mean
	// is not exported.
	noPHard bool
}

func newDrift(cfg DriftConfig) *drift {
	d := &drift{
		pHard:    newRing(cfg.Window),
		kinds:    make([]uint8, cfg.Window),
		fbWindow: cfg.FeedbackWindow,
	}
	d.setTiers([]string{"fast", "strong"}, false)
	return d
}

// setTiers sets the tiers of the serving model. Other labels restart the
// accuracy windows: a window is about one tier.
func (d *drift) setTiers(labels []string, noPHard bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.noPHard = noPHard
	if slices.Equal(labels, d.tierLabels) {
		return
	}
	d.tierLabels = slices.Clone(labels)
	d.tier = make([]ring, len(labels))
	for i := range d.tier {
		d.tier[i] = newRing(d.fbWindow)
	}
}

// routed records the policy's decision (before exploration) and p_hard
// of a request routed by model version. A new version restarts the
// window: its shares describe the router serving now.
func (d *drift) routed(version string, dec models.Decision, pHard float64) {
	d.mu.Lock()
	if version != d.version {
		d.version = version
		d.pHard.reset()
		d.counts = [3]int{}
	}
	slot := d.pHard.next
	if evicted := d.pHard.push(pHard); evicted {
		d.counts[d.kinds[slot]]--
	}
	k := decisionIndex(dec)
	d.kinds[slot] = uint8(k)
	d.counts[k]++
	d.mu.Unlock()
}

// scored records a feedback score for tier k, cheapest first (with two
// tiers: fast 0, strong 1).
func (d *drift) scored(k int, score float64) {
	d.mu.Lock()
	if k < len(d.tier) {
		d.tier[k].push(score)
	}
	d.mu.Unlock()
}

// driftCollector exports the windows as gauges at scrape time.
type driftCollector struct {
	d        *drift
	expected func() map[models.Decision]float64

	share, expShare, meanP, window, acc, accN *prometheus.Desc
}

func newDriftCollector(d *drift, expected func() map[models.Decision]float64) *driftCollector {
	return &driftCollector{
		d: d, expected: expected,
		share:    prometheus.NewDesc("triage_drift_decision_share", "Share of each policy decision (before exploration) over the latest routed requests (drift.window); absent before any.", []string{"decision"}, nil),
		expShare: prometheus.NewDesc("triage_drift_expected_share", "Share of each decision the serving model's thresholds were calibrated for (its expected_shares).", []string{"decision"}, nil),
		meanP:    prometheus.NewDesc("triage_drift_mean_p_hard", "Mean p_hard over the latest routed requests (drift.window); absent before any.", nil, nil),
		window:   prometheus.NewDesc("triage_drift_window_decisions", "Routed requests in the drift window; it restarts when another model version is loaded.", nil, nil),
		acc:      prometheus.NewDesc("triage_drift_tier_accuracy", "Mean score of the latest scored feedbacks (drift.feedback_window) for a tier (fast or strong; an N-tier model's tier names); absent before any.", []string{"tier"}, nil),
		accN:     prometheus.NewDesc("triage_drift_tier_feedback", "Scored feedbacks in the tier's accuracy window.", []string{"tier"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *driftCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.share, c.expShare, c.meanP, c.window, c.acc, c.accN} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *driftCollector) Collect(ch chan<- prometheus.Metric) {
	c.d.mu.Lock()
	n := c.d.pHard.n
	counts := c.d.counts
	meanP := c.d.pHard.mean()
	labels := c.d.tierLabels
	acc := make([]float64, len(c.d.tier))
	accN := make([]int, len(c.d.tier))
	for i := range c.d.tier {
		acc[i], accN[i] = c.d.tier[i].mean(), c.d.tier[i].n
	}
	noPHard := c.d.noPHard
	c.d.mu.Unlock()
	exp := c.expected()
	// A share or mean over nothing is left out rather than exported as
	// NaN, which alert rules and dashboards read as a value.
	for i, dec := range decisionOrder {
		if n > 0 {
			ch <- prometheus.MustNewConstMetric(c.share, prometheus.GaugeValue, float64(counts[i])/float64(n), string(dec))
		}
		if e, ok := exp[dec]; ok {
			ch <- prometheus.MustNewConstMetric(c.expShare, prometheus.GaugeValue, e, string(dec))
		}
	}
	if n > 0 && !noPHard {
		ch <- prometheus.MustNewConstMetric(c.meanP, prometheus.GaugeValue, meanP)
	}
	ch <- prometheus.MustNewConstMetric(c.window, prometheus.GaugeValue, float64(n))
	for i, tier := range labels {
		if accN[i] > 0 {
			ch <- prometheus.MustNewConstMetric(c.acc, prometheus.GaugeValue, acc[i], tier)
		}
		ch <- prometheus.MustNewConstMetric(c.accN, prometheus.GaugeValue, float64(accN[i]), tier)
	}
}

// loopMetrics are the feedback loop's series besides the drift gauges.
type loopMetrics struct {
	explored prometheus.Counter
}

// registerLoopMetrics registers the drift gauges and the exploration
// counter on reg. expected returns the serving model's expected shares.
func registerLoopMetrics(reg prometheus.Registerer, d *drift, expected func() map[models.Decision]float64) loopMetrics {
	m := loopMetrics{explored: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "triage_explored_total",
		Help: "Routed requests sent to speculate by exploration rather than by the policy.",
	})}
	reg.MustRegister(m.explored, newDriftCollector(d, expected))
	return m
}

// scored feeds a committed feedback's score into its tier's accuracy
// window, if it is about one of the serving model's (st's) tiers.
func (s *Server) scored(st *state, fb datasets.Feedback) {
	if fb.Outcome.Score == nil {
		return
	}
	k := slices.Index(st.tiers, fb.Model)
	if k < 0 {
		// A proxy tier's record_as name is its tier's too.
		k = slices.IndexFunc(s.cfg.Proxy.Tiers.List(), func(t proxy.Tier) bool { return t.RecordAs != "" && t.RecordAs == fb.Model })
	}
	if k >= 0 {
		s.drift.scored(k, *fb.Outcome.Score)
	}
}
