package serve

import (
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/triage-router/triage/datasets"
)

// countingSink counts what the writer commits.
type countingSink struct{ n atomic.Int64 }

func (s *countingSink) AppendDecisions(entries []datasets.LogEntry) error {
	s.n.Add(int64(len(entries)))
	return nil
}

// TestCloseAccountsForEveryRecord races Enqueue against Close: every record
// handed to the log must end written or counted as dropped, and every id
// claim released. Before Enqueue and Close shared a lock, an Enqueue that
// read "open" just before Close could put its record in the queue after
// the writer's last drain: neither written nor dropped, its claim held.
func TestCloseAccountsForEveryRecord(t *testing.T) {
	const rounds, senders, perSender = 500, 4, 50
	for round := range rounds {
		sink := &countingSink{}
		m := newMetrics(prometheus.NewRegistry(), func() float64 { return 0 }, func() float64 { return 0 })
		var released atomic.Int64
		d := newDecisionLog(sink, DecisionLogConfig{QueueSize: 1 << 12, BatchSize: 64}, m,
			slog.New(slog.NewTextHandler(io.Discard, nil)), func(string) { released.Add(1) })
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range senders {
			wg.Go(func() {
				<-start
				for range perSender {
					it := getItem()
					it.entry.ID = "x"
					it.claimed = true
					d.Enqueue(it)
				}
			})
		}
		wg.Go(func() {
			<-start
			d.Close()
		})
		close(start)
		wg.Wait()
		written := sink.n.Load()
		dropped := int64(testutil.ToFloat64(m.logDropped))
		if written+dropped != senders*perSender {
			t.Fatalf("round %d: %d written + %d dropped, want %d records accounted for", round, written, dropped, senders*perSender)
		}
		if got := released.Load(); got != senders*perSender {
			t.Fatalf("round %d: %d id claims released, want %d", round, got, senders*perSender)
		}
	}
}
