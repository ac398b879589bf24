package serve

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/triage-router/triage/datasets"
)

// logItem is one routed request on its way to the decision log. It owns
// the request body buffer, which goes back to the pool once written: the
// route path copies nothing for the log.
type logItem struct {
	entry datasets.LogEntry
	body  []byte
	// claimed says the entry's id is claimed (ids.go) until it is written.
	claimed bool
}

// maxPooledBody keeps one huge request from pinning its buffer forever.
const maxPooledBody = 64 << 10

var itemPool = sync.Pool{New: func() any { return &logItem{body: make([]byte, 0, 4096)} }}

func getItem() *logItem { return itemPool.Get().(*logItem) }

func putItem(it *logItem) {
	if cap(it.body) > maxPooledBody {
		return
	}
	it.body = it.body[:0]
	it.entry = datasets.LogEntry{}
	it.claimed = false
	itemPool.Put(it)
}

// decisionLog is a bounded queue of routed requests and the goroutine
// that writes them to the store in batches. Enqueue never blocks: a full
// queue drops the record and counts it.
type decisionLog struct {
	sink    DecisionLog
	queue   chan *logItem
	flushes chan chan struct{}
	stop    chan struct{}
	done    chan struct{}
	// mu orders Enqueue against Close: Enqueue reads closed and sends
	// under the read lock, Close sets it under the write lock, so once
	// Close holds the lock no send can follow the writer's last drain (a
	// record sent after it would be neither written nor counted as
	// dropped, and its id claim never released).
	mu      sync.RWMutex
	closed  bool
	batch   int
	m       *metrics
	log     *slog.Logger
	stopped sync.Once
	// release ends an item's id claim once it is written or dropped.
	release func(id string)
	// failing is the last commit's failure while no commit has
	// succeeded since (a full disk): the records are lost, and feedback
	// about them must not be told to route first.
	failing atomic.Pointer[logFailure]
	// lastDropWarn (unix ns) and dropsUnsaid rate-limit the warning for
	// dropped records to one per dropWarnEvery: a full queue drops
	// thousands a second, and the counter alone left the server log
	// silent about the loss.
	lastDropWarn atomic.Int64
	dropsUnsaid  atomic.Int64
}

// dropWarnEvery is how often, at most, the server log says records were
// dropped.
const dropWarnEvery = 10 * time.Second

// logFailure is a failed decision-log commit.
type logFailure struct {
	at  time.Time
	err error
}

// Failing returns the last commit's failure if no commit succeeded since,
// or nil.
func (d *decisionLog) Failing() *logFailure { return d.failing.Load() }

func newDecisionLog(sink DecisionLog, cfg DecisionLogConfig, m *metrics, log *slog.Logger, release func(id string)) *decisionLog {
	d := &decisionLog{
		release: release,
		sink:    sink,
		queue:   make(chan *logItem, cfg.QueueSize),
		flushes: make(chan chan struct{}),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		batch:   cfg.BatchSize,
		m:       m,
		log:     log,
	}
	go d.run()
	return d
}

// Depth is the number of records waiting.
func (d *decisionLog) Depth() int { return len(d.queue) }

// Enqueue hands it to the writer, or drops it when the queue is full or
// closed. It never blocks.
func (d *decisionLog) Enqueue(it *logItem) {
	d.mu.RLock()
	queued := false
	if !d.closed {
		select {
		case d.queue <- it:
			queued = true
		default:
		}
	}
	d.mu.RUnlock()
	if !queued {
		d.drop(it)
	}
}

func (d *decisionLog) drop(it *logItem) {
	d.m.logDropped.Inc()
	d.recycle(it)
	d.sayDropped()
}

// sayDropped logs, at most once per dropWarnEvery, how many records were
// dropped since the last warning.
func (d *decisionLog) sayDropped() {
	d.dropsUnsaid.Add(1)
	now := time.Now().UnixNano()
	last := d.lastDropWarn.Load()
	if last != 0 && now-last < int64(dropWarnEvery) || !d.lastDropWarn.CompareAndSwap(last, now) {
		return
	}
	n := d.dropsUnsaid.Swap(0)
	d.mu.RLock()
	closed := d.closed
	d.mu.RUnlock()
	why := "decision log queue full: routed requests were answered but not recorded (feedback about them is 404 unless it carries the prompt); the disk is slower than the traffic, or decision_log.queue_size is too small"
	if closed {
		why = "decision log closed for shutdown: requests routed after it were answered but not recorded"
	}
	args := []any{"dropped", n, "queue_size", cap(d.queue)}
	if last != 0 {
		args = append(args, "in_the_last", time.Duration(now-last).Round(time.Second).String())
	}
	d.log.Warn(why, args...)
}

// recycle returns an item written or dropped to the pool, ending its id
// claim.
func (d *decisionLog) recycle(it *logItem) {
	if it.claimed {
		d.release(it.entry.ID)
	}
	putItem(it)
}

// Flush returns once every record queued before the call is committed (or
// failed), so feedback that follows its route can find it.
func (d *decisionLog) Flush(ctx context.Context) error {
	ch := make(chan struct{})
	select {
	case d.flushes <- ch:
	case <-d.done:
		return nil // Close drained the queue
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops the writer after it drained the queue. Records enqueued
// after Close are dropped and counted.
func (d *decisionLog) Close() {
	d.stopped.Do(func() {
		d.mu.Lock()
		d.closed = true
		d.mu.Unlock()
		close(d.stop)
	})
	<-d.done
	if n := d.dropsUnsaid.Swap(0); n > 0 {
		// The drops since the last warning, so the log's counts add up.
		d.log.Warn("decision log: routed requests dropped since the last warning were answered but not recorded", "dropped", n, "queue_size", cap(d.queue))
	}
}

// logLinger is how long the writer waits for a batch to fill. It bounds
// how far the decision log lags behind routing; records still waiting when
// the process dies were never promised to anyone (the route path does not
// wait on the disk), and a graceful shutdown writes them.
const logLinger = 10 * time.Millisecond

func (d *decisionLog) run() {
	defer close(d.done)
	linger := time.NewTimer(logLinger)
	linger.Stop()
	items := make([]*logItem, 0, d.batch)
	entries := make([]datasets.LogEntry, 0, d.batch)
	// write commits items and recycles them.
	write := func() {
		if len(items) == 0 {
			return
		}
		entries = entries[:0]
		for _, it := range items {
			entries = append(entries, it.entry)
		}
		if err := d.sink.AppendDecisions(entries); err != nil {
			d.m.logFailures.Add(float64(len(items)))
			d.log.Error("decision log write failed; records lost", "records", len(items), "err", err)
			if d.failing.Load() == nil {
				d.failing.Store(&logFailure{at: time.Now(), err: err})
			}
		} else {
			d.m.logWritten.Add(float64(len(items)))
			if d.failing.Load() != nil {
				d.failing.Store(nil)
				d.log.Info("decision log writes succeed again")
			}
		}
		for i, it := range items {
			d.recycle(it)
			items[i] = nil
		}
		items = items[:0]
		clear(entries)
	}
	// drain writes what is queued at the call, in batches. Only that
	// many: under steady load the queue may never be empty, and a flush
	// only needs the records queued before it.
	drain := func() {
		for n := len(d.queue); n > 0; n-- {
			items = append(items, <-d.queue)
			if len(items) == d.batch {
				write()
			}
		}
		write()
	}
	for {
		select {
		case it := <-d.queue:
			// Gather up to a batch, waiting up to logLinger for more. A
			// commit costs two fdatasyncs and a page write whatever its
			// size, and no request waits for it, so fewer, fuller commits
			// leave the cores to routing: at 16,000 routes/s, taking only
			// what was already queued made commits of ~20 records, and
			// their syscalls cost a tenth of the route throughput on a
			// 2-core VM (bench/serve/throughput.sh).
			items = append(items, it)
			linger.Reset(logLinger)
		gather:
			for len(items) < d.batch {
				select {
				case it := <-d.queue:
					items = append(items, it)
				case <-linger.C:
					break gather
				}
			}
			linger.Stop()
			write()
		case ch := <-d.flushes:
			drain()
			close(ch)
		case <-d.stop:
			// Close set closed under the lock Enqueue sends under, so
			// nothing is sent after this point: one drain writes the
			// rest.
			drain()
			return
		}
	}
}
