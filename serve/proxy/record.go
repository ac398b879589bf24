package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/internal/plural"
)

// Recording is one proxied request for the feedback store: what was
// asked, what the router decided, and what each upstream did.
type Recording struct {
	RequestID string
	TS        time.Time
	// Messages (a chat completion) or Prompt (a completion) is what was
	// asked. Completion says Prompt was asked, "" included: an empty
	// prompt is recorded as one, not as a request without text.
	Messages   []datasets.Message
	Prompt     string
	Completion bool
	Meta       datasets.Meta
	// Decision is the decision acted on. Propensity is 1 for a routed
	// request and 0 when the client picked the tier (Forced).
	Decision datasets.Decision
	Forced   bool
	// Outcomes holds, by recorded model name, each upstream call that
	// completed (latency, usage, cost, the fast tier's raw confidence,
	// the answer unless responses are not recorded) or was cancelled
	// (Cancelled, the time it ran, a pro-rata cost). Calls that failed
	// are not outcomes: they are counted in the metrics.
	Outcomes map[string]datasets.Outcome
	// Response is the stored Responses API response the client was
	// given, with the tier that holds it, or nil: StoreRecorder keeps it
	// so that a follow-up reaches that tier after a restart too.
	Response *datasets.StoredResponse
}

// Recorder writes recordings durably. Record returns nil only once every
// recording of the batch is committed. It is called from one goroutine.
type Recorder interface {
	Record(ctx context.Context, batch []*Recording) error
}

// recordLinger is how long the writer waits for more recordings before a
// commit; a closing queue does not wait.
const recordLinger = 200 * time.Millisecond

// recordQueue hands finished requests to the Recorder off the request
// path: a bounded queue and one writer that takes whatever is waiting
// (up to DefaultRecordBatch) per call. A full queue drops and counts.
type recordQueue struct {
	rec  Recorder
	m    *metrics
	log  *slog.Logger
	ch   chan *Recording
	mu   sync.RWMutex // guards closed against sends on ch
	done chan struct{}
	// hurry cuts the writer's linger short: someone waits for a
	// recording (feedback about it, an export).
	hurry chan struct{}

	closed bool

	// unsettled holds the requests the proxy has answered or is
	// answering whose recording is not yet committed (or dropped), each
	// with a channel closed when it is; queued says the recording is in
	// the queue. Feedback posted as soon as an answer arrives, or an
	// export right after the traffic, waits on them instead of missing
	// the request.
	pmu       sync.Mutex
	unsettled map[string]*unsettled
}

type unsettled struct {
	done chan struct{}
	// queued: the recording is in the queue; awaited: someone waits for
	// it, so queueing it cuts the writer's linger short.
	queued, awaited bool
}

func newRecordQueue(rec Recorder, size int, m *metrics, log *slog.Logger) *recordQueue {
	q := &recordQueue{rec: rec, m: m, log: log, ch: make(chan *Recording, size), done: make(chan struct{}),
		hurry: make(chan struct{}, 1), unsettled: map[string]*unsettled{}}
	if rec == nil {
		close(q.done)
		q.closed = true
		return q
	}
	go q.writer()
	return q
}

// expect notes that the request id will be recorded: from here until its
// recording is committed or dropped, await waits for it.
func (q *recordQueue) expect(id string) {
	if q.rec == nil {
		return
	}
	q.pmu.Lock()
	q.unsettled[id] = &unsettled{done: make(chan struct{})}
	q.pmu.Unlock()
}

// settle ends the wait for id: its recording is committed, failed or
// dropped.
func (q *recordQueue) settle(id string) {
	q.pmu.Lock()
	if u, ok := q.unsettled[id]; ok {
		close(u.done)
		delete(q.unsettled, id)
	}
	q.pmu.Unlock()
}

// await returns once the recording of id, if one is expected, is
// committed, failed or dropped, or when ctx ends.
func (q *recordQueue) await(ctx context.Context, id string) error {
	q.pmu.Lock()
	u, ok := q.unsettled[id]
	if ok {
		u.awaited = true
		if u.queued {
			q.hurryUp()
		}
	}
	q.pmu.Unlock()
	if !ok {
		return nil
	}
	select {
	case <-u.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// flush returns once every recording queued before the call is
// committed, failed or dropped, or when ctx ends. Requests still being
// answered (a tier still running) are not waited for.
func (q *recordQueue) flush(ctx context.Context) error {
	q.pmu.Lock()
	var waits []chan struct{}
	for _, u := range q.unsettled {
		if u.queued {
			waits = append(waits, u.done)
		}
	}
	q.pmu.Unlock()
	if len(waits) > 0 {
		q.hurryUp()
	}
	for _, ch := range waits {
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (q *recordQueue) hurryUp() {
	select {
	case q.hurry <- struct{}{}:
	default:
	}
}

func (q *recordQueue) enqueue(r *Recording) {
	awaited := false
	q.pmu.Lock()
	if u, ok := q.unsettled[r.RequestID]; ok {
		u.queued, awaited = true, u.awaited
	}
	q.pmu.Unlock()
	if awaited {
		defer q.hurryUp() // once it is in the queue
	}
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.closed {
		if q.rec != nil {
			q.m.recDropped.Inc()
		}
		q.settle(r.RequestID)
		return
	}
	select {
	case q.ch <- r:
	default:
		q.m.recDropped.Inc()
		q.settle(r.RequestID)
	}
}

func (q *recordQueue) writer() {
	defer close(q.done)
	batch := make([]*Recording, 0, DefaultRecordBatch)
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	for first := range q.ch {
		batch = append(batch[:0], first)
		// Every commit has a fixed cost (pages, fsync) far above a
		// record's: waiting recordLinger for company cuts the store's CPU
		// per request several times under load (measured: about 400 us of
		// 650 us per proxied request at 900 req/s with no wait).
		linger.Reset(recordLinger)
	gather:
		for len(batch) < DefaultRecordBatch {
			select {
			case r, ok := <-q.ch:
				if !ok {
					break gather
				}
				batch = append(batch, r)
			case <-linger.C:
				break gather
			case <-q.hurry:
				// Take what is queued now and commit.
				for len(batch) < DefaultRecordBatch && len(q.ch) > 0 {
					r, ok := <-q.ch
					if !ok {
						break
					}
					batch = append(batch, r)
				}
				break gather
			}
		}
		linger.Stop()
		err := q.rec.Record(context.Background(), batch)
		for _, r := range batch {
			q.settle(r.RequestID)
		}
		if err != nil {
			q.m.recFailed.Add(float64(len(batch)))
			q.log.Error("proxy: record requests", "n", len(batch), "err", err)
			continue
		}
		q.m.recWritten.Add(float64(len(batch)))
	}
}

// close stops new recordings and waits for the queued ones.
func (q *recordQueue) close(ctx context.Context) error {
	q.mu.Lock()
	if !q.closed {
		q.closed = true
		close(q.ch)
	}
	q.mu.Unlock()
	select {
	case <-q.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("proxy: %s not yet written: %w", plural.Count(q.unwritten(), "recording"), ctx.Err())
	}
}

// unwritten counts the recordings queued and not yet committed: those in
// the channel and the batch the writer holds (len(q.ch) missed the batch
// and said 0 while one was lost).
func (q *recordQueue) unwritten() int {
	q.pmu.Lock()
	defer q.pmu.Unlock()
	n := 0
	for _, u := range q.unsettled {
		if u.queued {
			n++
		}
	}
	return n
}

// Store is the part of the feedback store a StoreRecorder writes to;
// datasets.BoltStore implements it.
type Store interface {
	AppendDecisions(entries []datasets.LogEntry) error
	PutFeedbackBatch(ctx context.Context, fbs []datasets.Feedback) error
}

var _ Store = (*datasets.BoltStore)(nil)

// StoreRecorder records into a feedback store: the batch's requests and
// decisions, with the tiers of the Responses API responses they stored,
// in one decision-log commit, then every outcome as feedback
// keyed by (request id, model), the writes sharing the store's group
// commits. An export then carries each request with its decision and its
// outcomes, ready for retraining.
type StoreRecorder struct {
	Store Store
}

// storedRequest is the decision log's request body: what an export keeps.
type storedRequest struct {
	Prompt   *string            `json:"prompt,omitempty"`
	Messages []datasets.Message `json:"messages,omitempty"`
	Meta     datasets.Meta      `json:"meta,omitempty"`
}

// Record implements Recorder.
func (s StoreRecorder) Record(ctx context.Context, batch []*Recording) error {
	entries := make([]datasets.LogEntry, 0, len(batch))
	for _, r := range batch {
		sr := storedRequest{Messages: r.Messages, Meta: r.Meta}
		if r.Prompt != "" || r.Completion {
			// "prompt": "" is exported as an empty prompt; no prompt
			// key as a request without text (datasets' decodeStored).
			sr.Prompt = &r.Prompt
		}
		body, err := json.Marshal(sr)
		if err != nil {
			return fmt.Errorf("encode request %s: %w", r.RequestID, err)
		}
		e := datasets.LogEntry{ID: r.RequestID, TS: r.TS, Decision: r.Decision, Request: body}
		// An id the db cannot key would fail the batch; it stays known
		// to this process alone.
		if r.Response != nil && keyable(r.Response.ID) && keyable(r.Response.Tier) && (r.Response.Owner == "" || keyable(r.Response.Owner)) {
			e.Response = r.Response
		}
		entries = append(entries, e)
	}
	if err := s.Store.AppendDecisions(entries); err != nil {
		return err
	}
	// Without messages: the decision entries committed above, so the
	// feedback need not be able to create its request (it would encode
	// the messages again per outcome). One batch shares the store's
	// commit without a goroutine per outcome (measured with
	// bench/proxy/profile.sh).
	var fbs []datasets.Feedback
	for _, r := range batch {
		for model, o := range r.Outcomes {
			fbs = append(fbs, datasets.Feedback{RequestID: r.RequestID, Model: model, Outcome: o, TS: r.TS})
		}
	}
	if err := s.Store.PutFeedbackBatch(ctx, fbs); err != nil {
		return fmt.Errorf("record outcomes: %w", err)
	}
	return nil
}
