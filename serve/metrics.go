package serve

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/triage-router/triage/datasets"
)

// metrics are the server's Prometheus series, registered on the registry
// the caller passes in. Label children used per request are resolved once
// here, so the hot path does atomic adds and no map lookups.
type metrics struct {
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	decisions *prometheus.CounterVec
	pHard     prometheus.Histogram

	decFast, decSpeculate, decEscalate prometheus.Counter

	feedbackWrites   prometheus.Counter
	feedbackFailures prometheus.Counter

	logDropped  prometheus.Counter
	logWritten  prometheus.Counter
	logFailures prometheus.Counter

	modelInfo *prometheus.GaugeVec
	reloadsOK prometheus.Counter
	reloadsEr prometheus.Counter
}

// latencyBuckets span a cached route (tens of microseconds) to a slow
// admin stream.
var latencyBuckets = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10}

// probabilityBuckets are tenths, written out: prometheus.LinearBuckets
// adds 0.1 ten times and labels the third bucket le="0.30000000000000004".
var probabilityBuckets = []float64{.1, .2, .3, .4, .5, .6, .7, .8, .9, 1}

func newMetrics(reg prometheus.Registerer, queueDepth, dbSize func() float64) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "triage_http_requests_total",
			Help: "HTTP requests by route, method and status code (499: the client went away first).",
		}, []string{"route", "method", "code"}),
		// method, because one route pattern may serve several
		// (GET and DELETE /v1/responses/:id): a route alone counted a
		// stored response's deletions with its retrievals.
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "triage_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route and method.",
			Buckets: latencyBuckets,
		}, []string{"route", "method"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "triage_decisions_total",
			Help: "Routing decisions by kind.",
		}, []string{"decision"}),
		pHard: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "triage_p_hard",
			Help:    "Calibrated probability that a routed request needs the strong tier.",
			Buckets: probabilityBuckets,
		}),
		feedbackWrites: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "triage_feedback_writes_total",
			Help: "Feedback records committed to the db.",
		}),
		feedbackFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "triage_feedback_write_failures_total",
			Help: "Feedback writes that failed in the db (not client errors).",
		}),
		logDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "triage_decision_log_dropped_total",
			Help: "Routed requests not logged because the decision-log queue was full.",
		}),
		logWritten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "triage_decision_log_written_total",
			Help: "Routed requests committed to the decision log.",
		}),
		logFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "triage_decision_log_write_failures_total",
			Help: "Routed requests lost because a decision-log commit failed.",
		}),
		modelInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "triage_model_info",
			Help: "The router artifact being served (value 1, version label).",
		}, []string{"version"}),
	}
	reloads := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "triage_model_reloads_total",
		Help: "Model reloads by result (ok, error).",
	}, []string{"result"})
	m.reloadsOK = reloads.WithLabelValues("ok")
	m.reloadsEr = reloads.WithLabelValues("error")
	m.decFast = m.decisions.WithLabelValues("fast")
	m.decSpeculate = m.decisions.WithLabelValues("speculate")
	m.decEscalate = m.decisions.WithLabelValues("escalate")
	reg.MustRegister(m.requests, m.latency, m.decisions, m.pHard, m.feedbackWrites, m.feedbackFailures,
		m.logDropped, m.logWritten, m.logFailures, m.modelInfo, reloads,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "triage_decision_log_queue_depth",
			Help: "Routed requests waiting to be written to the decision log.",
		}, queueDepth),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "triage_db_size_bytes",
			Help: "Size of the feedback db file as of the last commit.",
		}, dbSize),
	)
	return m
}

// commitStatser is what a store may offer about its feedback commits.
type commitStatser interface {
	CommitStats() datasets.CommitStats
}

// registerCommitStats exports a store's group-commit totals, if it has
// them: the mean feedback group is writes/commits.
func registerCommitStats(reg prometheus.Registerer, store any) {
	cs, ok := store.(commitStatser)
	if !ok {
		return
	}
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "triage_feedback_commits_total",
			Help: "Group commits of feedback writes to the db.",
		}, func() float64 { return float64(cs.CommitStats().Commits) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "triage_feedback_commit_writes_total",
			Help: "Feedback writes carried by the group commits (divide by commits for the mean group).",
		}, func() float64 { return float64(cs.CommitStats().Writes) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "triage_feedback_commit_seconds_total",
			Help: "Time spent in feedback group commits (log append and fdatasync).",
		}, func() float64 { return cs.CommitStats().Time.Seconds() }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "triage_feedback_log_applies_total",
			Help: "Applications of the feedback log to the db (when half full, before an export or snapshot, at close).",
		}, func() float64 { return float64(cs.CommitStats().Applies) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "triage_feedback_log_apply_seconds_total",
			Help: "Time spent applying the feedback log to the db, fsyncs included.",
		}, func() float64 { return cs.CommitStats().ApplyTime.Seconds() }),
	)
}

// routeMetrics are one route's (a method and a path pattern's)
// pre-resolved series.
type routeMetrics struct {
	m             *metrics
	route, method string
	ok            prometheus.Counter
	latency       prometheus.Observer
}

func (m *metrics) forRoute(method, route string) *routeMetrics {
	return &routeMetrics{m: m, route: route, method: method,
		ok: m.requests.WithLabelValues(route, method, "200"), latency: m.latency.WithLabelValues(route, method)}
}

func (r *routeMetrics) done(status int, start time.Time) { r.doneAt(status, start, time.Time{}) }

// doneAt counts a request answered at end, or now if end is zero: a
// proxied race's answer is sent before its handler ends (loser_grace).
func (r *routeMetrics) doneAt(status int, start, end time.Time) {
	if end.IsZero() {
		end = time.Now()
	}
	if status == 200 {
		r.ok.Inc()
	} else {
		// Errors are rare enough for a label lookup.
		r.m.requests.WithLabelValues(r.route, r.method, strconv.Itoa(status)).Inc()
	}
	r.latency.Observe(end.Sub(start).Seconds())
}
