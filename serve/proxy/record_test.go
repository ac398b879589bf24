package proxy

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// gateRecorder commits a batch only when its test lets it.
type gateRecorder struct {
	release chan struct{}
	got     chan []string
}

func (g *gateRecorder) Record(_ context.Context, batch []*Recording) error {
	<-g.release
	ids := make([]string, len(batch))
	for i, r := range batch {
		ids[i] = r.RequestID
	}
	g.got <- ids
	return nil
}

// await waits for an expected request's recording, from before it is
// queued until it is committed; an id the queue does not expect returns
// at once. flush waits for what is queued, not for requests still running.
func TestRecordQueueAwaitAndFlush(t *testing.T) {
	g := &gateRecorder{release: make(chan struct{}), got: make(chan []string, 4)}
	q := newRecordQueue(g, 16, newMetrics(prometheus.NewRegistry()), slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer q.close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if err := q.await(ctx, "never-seen"); err != nil {
		t.Fatalf("await of an id never expected: %v, want nil at once", err)
	}
	q.expect("running")
	q.expect("queued")
	q.enqueue(&Recording{RequestID: "queued"})

	awaited := make(chan error, 1)
	go func() { awaited <- q.await(ctx, "running") }()
	flushed := make(chan error, 1)
	go func() { flushed <- q.flush(ctx) }()
	select {
	case err := <-awaited:
		t.Fatalf("await returned %v before the request was recorded", err)
	case err := <-flushed:
		t.Fatalf("flush returned %v before the queued recording was committed", err)
	case <-time.After(50 * time.Millisecond):
	}
	g.release <- struct{}{}
	if ids := <-g.got; len(ids) != 1 || ids[0] != "queued" {
		t.Fatalf("first commit %v, want [queued]", ids)
	}
	if err := <-flushed; err != nil {
		t.Fatalf("flush: %v", err)
	}
	select {
	case err := <-awaited:
		t.Fatalf("await of the running request returned %v before it was recorded", err)
	default:
	}
	q.enqueue(&Recording{RequestID: "running"})
	g.release <- struct{}{}
	<-g.got
	if err := <-awaited; err != nil {
		t.Fatalf("await: %v", err)
	}

	// A bounded wait ends with the context's error.
	q.expect("stuck")
	short, cancelShort := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancelShort()
	if err := q.await(short, "stuck"); err == nil {
		t.Error("await of a request never recorded returned nil, want the context's error")
	}
	q.settle("stuck")
}
