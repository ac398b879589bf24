package serve

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/triage-router/triage/datasets"
)

// DefaultRetentionInterval is how often the server applies the retention
// bounds: often enough that a busy decision log (tens of MB/s at full
// load) overshoots max_bytes by little between two passes.
const DefaultRetentionInterval = 5 * time.Second

// RetentionConfig bounds what the feedback db keeps. Without it every
// routed prompt is kept for good. See docs/serving.md for sizing.
type RetentionConfig struct {
	// MaxAge removes records routed longer ago than this, with their
	// feedback and the proxy's stored-response entries they made; 0
	// keeps every age.
	MaxAge time.Duration `yaml:"max_age"`
	// MaxBytes bounds the bytes of the db's pages in use
	// (triage_db_used_bytes). Over it, records without feedback are
	// removed first, oldest first, then the oldest with feedback (each
	// with its stored-response entry), down to 90% of it; bbolt reuses the freed pages, so the file stops
	// growing ('triage feedback compact' shrinks it). 0 means no bound.
	MaxBytes int64 `yaml:"max_bytes"`
	// Interval is how often the bounds are applied.
	Interval time.Duration `yaml:"interval"`
}

// Enabled reports whether a bound is set.
func (r RetentionConfig) Enabled() bool { return r.MaxAge > 0 || r.MaxBytes > 0 }

// minRetentionBytes keeps max_bytes above what an empty db and a few
// pages of records take, so a typo (64 for 64 MiB) is an error, not a
// store that deletes every record it gets.
const minRetentionBytes = 1 << 20

func (r RetentionConfig) validate() error {
	switch {
	case r.MaxAge < 0:
		return fmt.Errorf("retention.max_age is %s, want 0 (keep every age) or more", r.MaxAge)
	case r.MaxBytes != 0 && r.MaxBytes < minRetentionBytes:
		return fmt.Errorf("retention.max_bytes is %d, want 0 (no bound) or at least %d (sizes are bytes)", r.MaxBytes, minRetentionBytes)
	case r.Interval <= 0:
		return fmt.Errorf("retention.interval is %s, want a positive duration", r.Interval)
	}
	return nil
}

// Pruner is what retention needs from the store.
type Pruner interface {
	Prune(ctx context.Context, opts datasets.RetentionOptions) (datasets.PruneStats, error)
}

// retention applies the bounds every interval until stopped.
type retention struct {
	cfg     RetentionConfig
	store   Pruner
	now     func() time.Time
	log     *slog.Logger
	removed *prometheus.CounterVec
	runs    prometheus.Counter
	fails   prometheus.Counter
	stop    chan struct{}
	done    chan struct{}
}

func newRetention(cfg RetentionConfig, store Pruner, now func() time.Time, log *slog.Logger, reg prometheus.Registerer) *retention {
	r := &retention{
		cfg: cfg, store: store, now: now, log: log,
		removed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "triage_retention_removed_total",
			Help: "Records removed from the feedback db by retention, by reason (age, size).",
		}, []string{"reason"}),
		runs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "triage_retention_runs_total",
			Help: "Retention passes over the feedback db.",
		}),
		fails: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "triage_retention_failures_total",
			Help: "Retention passes that failed (logged).",
		}),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	reg.MustRegister(r.removed, r.runs, r.fails)
	if !cfg.Enabled() {
		close(r.done)
		return r
	}
	go r.loop()
	return r
}

func (r *retention) loop() {
	defer close(r.done)
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-r.stop
		cancel()
	}()
	for {
		r.pass(ctx)
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
	}
}

// pass applies the bounds once.
func (r *retention) pass(ctx context.Context) {
	st, err := r.store.Prune(ctx, datasets.RetentionOptions{MaxAge: r.cfg.MaxAge, MaxBytes: r.cfg.MaxBytes, Now: r.now})
	r.runs.Inc()
	r.removed.WithLabelValues("age").Add(float64(st.ByAge))
	r.removed.WithLabelValues("size").Add(float64(st.BySize))
	if err != nil && ctx.Err() == nil {
		r.fails.Inc()
		r.log.Error("retention failed", "err", err)
		return
	}
	if st.ByAge+st.BySize > 0 {
		r.log.Info("retention removed records", "by_age", st.ByAge, "by_size", st.BySize, "with_feedback", st.WithFeedback,
			"used_bytes_before", st.UsedBefore, "used_bytes_after", st.UsedAfter)
	}
}

// close stops the loop and waits for a pass in progress.
func (r *retention) close() {
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
	<-r.done
}
