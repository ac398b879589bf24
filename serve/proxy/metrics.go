package proxy

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// confidenceBuckets are tenths, written out: prometheus.LinearBuckets
// adds 0.1 ten times and labels the third bucket le="0.30000000000000004".
var confidenceBuckets = []float64{.1, .2, .3, .4, .5, .6, .7, .8, .9, 1}

// upstreamBuckets span a local model's tens of milliseconds to a long
// answer from a large one.
var upstreamBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}

// metrics are the proxy's series, registered on the caller's registry.
type metrics struct {
	requests     *prometheus.CounterVec
	upstreamDur  *prometheus.HistogramVec
	cancels      *prometheus.CounterVec
	speculations *prometheus.CounterVec
	tokens       *prometheus.CounterVec
	costs        *prometheus.CounterVec
	confidence   prometheus.Histogram
	recordings   *prometheus.CounterVec
	explored     prometheus.Counter
	exploreCost  *prometheus.CounterVec
	pinned       *prometheus.CounterVec

	recWritten, recDropped, recFailed prometheus.Counter
	// byRequest and bySpec hold the series already resolved: a label
	// lookup hashes its values on every call.
	byRequest sync.Map // requestKey -> prometheus.Counter
	bySpec    map[string]prometheus.Counter
}

type requestKey struct {
	decision string
	status   int
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "triage_proxy_requests_total",
			Help: "Proxied requests (chat completions, completions, Responses API, embeddings and a stored response's routes) by decision (none when refused before routing, passthrough when not routed) and status code (499: the client went away).",
		}, []string{"decision", "code"}),
		upstreamDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "triage_proxy_upstream_duration_seconds",
			Help:    "Upstream call time by tier and result (ok, error, client_error, timeout, cancelled).",
			Buckets: upstreamBuckets,
		}, []string{"tier", "result"}),
		cancels: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "triage_proxy_upstream_cancelled_total",
			Help: "Upstream calls cancelled before they finished, by tier and reason (loser: the other tier's answer was kept; client: the client went away; timeout).",
		}, []string{"tier", "reason"}),
		speculations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "triage_proxy_speculations_total",
			Help: "Speculations by outcome: fast_accepted, strong_used, fast_fallback (strong failed), failed, abandoned (client left).",
		}, []string{"outcome"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "triage_proxy_tokens_total",
			Help: "Tokens the upstreams reported, by tier and kind (input, output).",
		}, []string{"tier", "kind"}),
		costs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "triage_proxy_cost_usd_total",
			Help: "Cost of upstream calls in USD by tier, cancelled calls pro rata.",
		}, []string{"tier"}),
		confidence: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "triage_proxy_fast_confidence",
			Help:    "Calibrated confidence of fast answers judged in a speculation.",
			Buckets: confidenceBuckets,
		}),
		recordings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "triage_proxy_recordings_total",
			Help: "Proxied requests by recording result (written, dropped: queue full or closed, failed: the store refused).",
		}, []string{"result"}),
		explored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "triage_proxy_explored_total",
			Help: "Routed proxy requests that exploration ran on both tiers to completion.",
		}),
		exploreCost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "triage_proxy_exploration_cost_usd_total",
			Help: "What exploration added in USD, by tier: the cost of the tier the policy would not have run (strong on a fast decision, fast on an escalation).",
		}, []string{"tier"}),
		pinned: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "triage_proxy_pinned_total",
			Help: "Responses API requests sent to the tier that stored the response they continue (previous_response_id), whatever the router said, by tier.",
		}, []string{"tier"}),
	}
	m.recWritten = m.recordings.WithLabelValues("written")
	m.recDropped = m.recordings.WithLabelValues("dropped")
	m.recFailed = m.recordings.WithLabelValues("failed")
	m.bySpec = map[string]prometheus.Counter{}
	for _, o := range []string{SpecFastAccepted, SpecStrongUsed, SpecFastFallback, SpecFailed, SpecAbandoned} {
		m.bySpec[o] = m.speculations.WithLabelValues(o)
	}
	reg.MustRegister(m.requests, m.upstreamDur, m.cancels, m.speculations, m.tokens, m.costs, m.confidence, m.recordings, m.explored, m.exploreCost, m.pinned)
	return m
}

func (m *metrics) request(decision string, status int) {
	k := requestKey{decision, status}
	c, ok := m.byRequest.Load(k)
	if !ok {
		c, _ = m.byRequest.LoadOrStore(k, m.requests.WithLabelValues(decision, strconv.Itoa(status)))
	}
	c.(prometheus.Counter).Inc()
}

func (m *metrics) speculation(outcome string) prometheus.Counter {
	if c, ok := m.bySpec[outcome]; ok {
		return c
	}
	return m.speculations.WithLabelValues(outcome)
}

// tierMetrics are one tier's series, resolved once.
type tierMetrics struct {
	dur                       map[string]prometheus.Observer
	cancel                    map[string]prometheus.Counter
	tokensIn, tokensOut, cost prometheus.Counter
}

func (m *metrics) forTier(name string) *tierMetrics {
	tm := &tierMetrics{dur: map[string]prometheus.Observer{}, cancel: map[string]prometheus.Counter{},
		tokensIn: m.tokens.WithLabelValues(name, "input"), tokensOut: m.tokens.WithLabelValues(name, "output"),
		cost: m.costs.WithLabelValues(name)}
	for _, r := range []string{"ok", "error", "client_error", "timeout", "cancelled"} {
		tm.dur[r] = m.upstreamDur.WithLabelValues(name, r)
	}
	for _, r := range []string{cancelLoser, cancelClient, "timeout"} {
		tm.cancel[r] = m.cancels.WithLabelValues(name, r)
	}
	return tm
}

func (tm *tierMetrics) observe(result string, ms float64) { tm.dur[result].Observe(ms / 1000) }

func (tm *tierMetrics) cancelled(reason string) prometheus.Counter { return tm.cancel[reason] }
