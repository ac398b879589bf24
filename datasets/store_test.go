package datasets

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func openTestStore(tb testing.TB) *BoltStore {
	tb.Helper()
	s, err := OpenBoltStore(filepath.Join(tb.TempDir(), "feedback.db"), StoreOptions{NoSync: true})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func exportAll(tb testing.TB, s *BoltStore, opts ExportOptions) []Record {
	tb.Helper()
	var buf bytes.Buffer
	n, err := s.Export(context.Background(), &buf, opts)
	if err != nil {
		tb.Fatal(err)
	}
	recs, _, err := readRecords(&buf)
	if err != nil {
		tb.Fatalf("export is not valid JSONL: %v", err)
	}
	if n != len(recs) {
		tb.Fatalf("Export said %d records, wrote %d", n, len(recs))
	}
	return recs
}

func readRecords(r io.Reader) ([]Record, int, error) {
	rd := NewReader(r, "export", ReadOptions{AllowMissingScore: true})
	var out []Record
	for {
		rec, err := rd.Next()
		if err == io.EOF {
			return out, rd.Skipped(), nil
		}
		if err != nil {
			return out, rd.Skipped(), err
		}
		out = append(out, rec)
	}
}

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func entry(id string, ts time.Time, kind string, p float64, body string) LogEntry {
	return LogEntry{ID: id, TS: ts, Decision: Decision{Kind: kind, PHard: p, ModelVersion: "v1"}, Request: []byte(body)}
}

func TestStoreSecondOpenTimesOut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "feedback.db")
	s, err := OpenBoltStore(path, StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = OpenBoltStore(path, StoreOptions{Timeout: 50 * time.Millisecond})
	if !errors.Is(err, ErrStoreLocked) {
		t.Fatalf("second open: got %v, want ErrStoreLocked", err)
	}
	for _, want := range []string{path, "is a triage serve running?"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestStoreReopenKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "feedback.db")
	s, err := OpenBoltStore(path, StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AppendDecisions([]LogEntry{entry("a", t0, "fast", 0.1, `{"prompt":"hi"}`)}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutFeedback(context.Background(), Feedback{RequestID: "a", Model: "m", Outcome: Outcome{Score: Float(1)}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = OpenBoltStore(path, StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	recs := exportAll(t, s, ExportOptions{})
	if len(recs) != 1 || recs[0].ID != "a" || *recs[0].Outcomes["m"].Score != 1 {
		t.Fatalf("after reopen got %+v, want record a with feedback from m", recs)
	}
}

func TestStoreRefusesOtherSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "feedback.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error {
		b, _ := tx.CreateBucketIfNotExists(bucketMeta)
		return b.Put(keySchema, []byte("99"))
	})
	db.Close()
	_, err = OpenBoltStore(path, StoreOptions{})
	if err == nil || !strings.Contains(err.Error(), `schema is "99"`) {
		t.Fatalf("got %v, want an error naming the schema", err)
	}
}

func TestStoreFeedback(t *testing.T) {
	ctx := context.Background()
	t.Run("unknown id without a prompt is ErrUnknownRequest and writes nothing", func(t *testing.T) {
		s := openTestStore(t)
		err := s.PutFeedback(ctx, Feedback{RequestID: "nope", Model: "m", Outcome: Outcome{Score: Float(1)}})
		if !errors.Is(err, ErrUnknownRequest) {
			t.Fatalf("got %v, want ErrUnknownRequest", err)
		}
		if recs := exportAll(t, s, ExportOptions{}); len(recs) != 0 {
			t.Fatalf("export has %d records, want 0", len(recs))
		}
	})
	t.Run("unknown id with a prompt creates the record", func(t *testing.T) {
		s := openTestStore(t)
		err := s.PutFeedback(ctx, Feedback{RequestID: "ext-1", Model: "m", Outcome: Outcome{Score: Float(0)},
			Messages: []Message{{Role: "user", Content: "hello"}}, Meta: Meta{"tenant": "t1"}, TS: t0})
		if err != nil {
			t.Fatal(err)
		}
		recs := exportAll(t, s, ExportOptions{})
		if len(recs) != 1 {
			t.Fatalf("got %d records, want 1", len(recs))
		}
		r := recs[0]
		if r.ID != "ext-1" || len(r.Messages) != 1 || r.Messages[0].Content != "hello" || r.Meta["tenant"] != "t1" || !r.TS.Equal(t0) || r.Decision != nil {
			t.Errorf("got %+v, want ext-1 with its messages, meta, ts and no decision", r)
		}
	})
	t.Run("bad keys are refused", func(t *testing.T) {
		s := openTestStore(t)
		for _, fb := range []Feedback{
			{RequestID: "", Model: "m"},
			{RequestID: "a", Model: ""},
			{RequestID: "a\x00b", Model: "m"},
			{RequestID: strings.Repeat("x", MaxIDBytes+1), Model: "m"},
		} {
			if err := s.PutFeedback(ctx, fb); err == nil || errors.Is(err, ErrUnknownRequest) {
				t.Errorf("PutFeedback(%q, %q) = %v, want a key error", fb.RequestID, fb.Model, err)
			}
		}
	})
}

func TestStoreConcurrentFeedbackIsIdempotent(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	const ids, models, rounds = 20, 3, 4
	var entries []LogEntry
	for i := range ids {
		entries = append(entries, entry(fmt.Sprintf("r%02d", i), t0.Add(time.Duration(i)*time.Second), "fast", 0.2, `{"prompt":"p"}`))
	}
	if err := s.AppendDecisions(entries); err != nil {
		t.Fatal(err)
	}
	// Every (id, model) is written several times from different goroutines
	// in one batch; the last round's score must win.
	for round := range rounds {
		var wg sync.WaitGroup
		errs := make(chan error, ids*models)
		for i := range ids {
			for m := range models {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs <- s.PutFeedback(ctx, Feedback{RequestID: fmt.Sprintf("r%02d", i), Model: fmt.Sprintf("m%d", m),
						Outcome: Outcome{Score: Float(float64(round) / rounds)}})
				}()
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	recs := exportAll(t, s, ExportOptions{})
	if len(recs) != ids {
		t.Fatalf("got %d records, want %d", len(recs), ids)
	}
	for _, r := range recs {
		if len(r.Outcomes) != models {
			t.Errorf("%s has %d outcomes, want %d", r.ID, len(r.Outcomes), models)
		}
		for m, o := range r.Outcomes {
			if got, want := *o.Score, float64(rounds-1)/rounds; got != want {
				t.Errorf("%s/%s score = %v, want the last write %v", r.ID, m, got, want)
			}
		}
	}
}

// TestStoreExportNamesValueDamage: damage inside a stored record (as
// flipped bytes in a value) leaves bbolt's structure sound, so the open passes; the export must then
// name the file and what to do, not only the JSON error.
func TestStoreExportNamesValueDamage(t *testing.T) {
	s := openTestStore(t)
	if err := s.AppendDecisions([]LogEntry{entry("a", t0, "fast", 0.1, `{"prompt":"one"}`), entry("b", t0.Add(time.Second), "fast", 0.1, `{"prompt":"two"}`)}); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLog)
		k, v := b.Cursor().Last()
		// Half the value: its JSON ends inside the record.
		return b.Put(bytes.Clone(k), bytes.Clone(v[:len(v)/2]))
	}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Export(context.Background(), io.Discard, ExportOptions{})
	if err == nil {
		t.Fatal("export of a damaged record succeeded")
	}
	for _, want := range []string{"export feedback db " + s.Path(), "damaged inside a record", "triage feedback check --db " + s.Path(), "triage feedback salvage --db " + s.Path()} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestStoreExportJoinsDecisionsAndFeedback(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	// Written out of time order, in two batches: the export must be in
	// time order.
	if err := s.AppendDecisions([]LogEntry{
		entry("late", t0.Add(2*time.Minute), "escalate", 0.9, `{"messages":[{"role":"user","content":"prove it"}],"meta":{"subject":"math"},"explain":true}`),
		entry("early", t0, "fast", 0.125, `{"prompt":"2+2?","id":"early"}`),
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendDecisions([]LogEntry{entry("mid", t0.Add(time.Minute), "speculate", 0.5, "{\"prompt\":\"caf\u00e9 \\\"quoted\\\"\"}")}); err != nil {
		t.Fatal(err)
	}
	fbs := []Feedback{
		{RequestID: "early", Model: "fast-m", Outcome: Outcome{Score: Float(1), LatencyMS: Float(120), Confidence: Float(-0.2)}},
		{RequestID: "early", Model: "strong-m", Outcome: Outcome{Score: Float(1), CostUSD: Float(0.01), Response: "4"}},
		{RequestID: "late", Model: "strong-m", Outcome: Outcome{Confidence: Float(-1.5)}},
	}
	for _, fb := range fbs {
		if err := s.PutFeedback(ctx, fb); err != nil {
			t.Fatal(err)
		}
	}
	recs := exportAll(t, s, ExportOptions{})
	var order []string
	for _, r := range recs {
		order = append(order, r.ID)
	}
	if got, want := strings.Join(order, ","), "early,mid,late"; got != want {
		t.Fatalf("export order = %s, want %s", got, want)
	}
	early, mid, late := recs[0], recs[1], recs[2]
	if early.Prompt != "2+2?" || !early.TS.Equal(t0) {
		t.Errorf("early = %+v, want its prompt and ts", early)
	}
	if d := early.Decision; d == nil || d.Kind != "fast" || d.PHard != 0.125 || d.ModelVersion != "v1" {
		t.Errorf("early.decision = %+v, want fast, 0.125, v1", d)
	}
	if o := early.Outcomes["fast-m"]; len(early.Outcomes) != 2 || *o.Score != 1 || *o.LatencyMS != 120 || *o.Confidence != -0.2 {
		t.Errorf("early.outcomes = %+v, want both models with the posted fields", early.Outcomes)
	}
	if o := early.Outcomes["strong-m"]; o.Response != "4" || *o.CostUSD != 0.01 {
		t.Errorf("early.outcomes[strong-m] = %+v, want response 4 and cost 0.01", o)
	}
	if mid.Prompt != "caf\u00e9 \"quoted\"" || mid.Outcomes != nil {
		t.Errorf("mid = %+v, want the escaped prompt decoded and no outcomes", mid)
	}
	if len(late.Messages) != 1 || late.Messages[0].Content != "prove it" || late.Meta["subject"] != "math" {
		t.Errorf("late = %+v, want its messages and meta", late)
	}
	if o := late.Outcomes["strong-m"]; o.Score != nil || *o.Confidence != -1.5 {
		t.Errorf("late.outcomes = %+v, want a confidence-only outcome", late.Outcomes)
	}

	t.Run("since skips earlier records", func(t *testing.T) {
		recs := exportAll(t, s, ExportOptions{Since: t0.Add(time.Minute)})
		if len(recs) != 2 || recs[0].ID != "mid" {
			t.Fatalf("got %d records starting %v, want mid and late", len(recs), recs)
		}
	})
}

func TestStoreRepeatedIDReplacesRecordKeepsFeedback(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	if err := s.PutFeedback(ctx, Feedback{RequestID: "x", Model: "m", Outcome: Outcome{Score: Float(1)}, Prompt: "first", TS: t0}); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendDecisions([]LogEntry{entry("x", t0.Add(time.Second), "fast", 0.3, `{"prompt":"second"}`)}); err != nil {
		t.Fatal(err)
	}
	recs := exportAll(t, s, ExportOptions{})
	if len(recs) != 1 {
		t.Fatalf("got %d records, want 1", len(recs))
	}
	if r := recs[0]; r.Prompt != "second" || r.Decision == nil || r.Outcomes["m"].Score == nil {
		t.Errorf("got %+v, want the routed record with the earlier feedback", r)
	}
}

func TestStoreExportCrossesChunks(t *testing.T) {
	s := openTestStore(t)
	const n = 2*exportChunk + 7
	var entries []LogEntry
	for i := range n {
		entries = append(entries, entry(fmt.Sprintf("r%05d", i), t0.Add(time.Duration(i)*time.Millisecond), "fast", 0.1, `{"prompt":"p"}`))
	}
	if err := s.AppendDecisions(entries); err != nil {
		t.Fatal(err)
	}
	recs := exportAll(t, s, ExportOptions{})
	if len(recs) != n {
		t.Fatalf("got %d records, want %d", len(recs), n)
	}
	for i, r := range recs {
		if want := fmt.Sprintf("r%05d", i); r.ID != want {
			t.Fatalf("record %d is %s, want %s", i, r.ID, want)
		}
	}
}

func TestStoreAppendRejectsNonObjectRequest(t *testing.T) {
	s := openTestStore(t)
	err := s.AppendDecisions([]LogEntry{entry("a", t0, "fast", 0.1, `"just a string"`)})
	if err == nil || !strings.Contains(err.Error(), "not a JSON object") {
		t.Fatalf("got %v, want an error saying the request is not a JSON object", err)
	}
}

func TestStoreSnapshotIsAValidDatabase(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	if err := s.AppendDecisions([]LogEntry{entry("a", t0, "fast", 0.1, `{"prompt":"p"}`), entry("b", t0.Add(time.Second), "escalate", 0.8, `{"prompt":"q"}`)}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutFeedback(ctx, Feedback{RequestID: "b", Model: "m", Outcome: Outcome{Score: Float(0)}}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	n, err := s.Snapshot(ctx, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) || n == 0 {
		t.Fatalf("Snapshot said %d bytes, wrote %d", n, buf.Len())
	}
	path := filepath.Join(t.TempDir(), "snap.db")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	snap, err := OpenBoltStore(path, StoreOptions{})
	if err != nil {
		t.Fatalf("snapshot does not open as a store: %v", err)
	}
	defer snap.Close()
	snap.db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			t.Errorf("snapshot fails bbolt's consistency check: %v", err)
		}
		return nil
	})
	got, want := exportAll(t, snap, ExportOptions{}), exportAll(t, s, ExportOptions{})
	if len(got) != 2 || len(got) != len(want) || got[1].Outcomes["m"].Score == nil {
		t.Fatalf("snapshot export = %+v, want the live export %+v", got, want)
	}
	matches, _ := filepath.Glob(filepath.Join(filepath.Dir(s.Path()), ".*snapshot*"))
	if len(matches) != 0 {
		t.Errorf("temporary snapshot files left behind: %v", matches)
	}
}

// BenchmarkPutFeedbackParallel measures batched durable feedback commits
// (with fsync) from many goroutines.
func BenchmarkPutFeedbackParallel(b *testing.B) {
	s, err := OpenBoltStore(filepath.Join(b.TempDir(), "feedback.db"), StoreOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const ids = 1000
	var entries []LogEntry
	for i := range ids {
		entries = append(entries, entry(fmt.Sprintf("r%d", i), t0, "fast", 0.1, `{"prompt":"p"}`))
	}
	if err := s.AppendDecisions(entries); err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(32) // 64 writers on 2 cores, as in the acceptance figure
	var mu sync.Mutex
	next := 0
	b.RunParallel(func(pb *testing.PB) {
		mu.Lock()
		w := next
		next++
		mu.Unlock()
		i := 0
		for pb.Next() {
			i++
			err := s.PutFeedback(context.Background(), Feedback{RequestID: fmt.Sprintf("r%d", i%ids), Model: fmt.Sprintf("m%d", w), Outcome: Outcome{Score: Float(1)}})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestStoreWriteAfterCloseFails(t *testing.T) {
	s, err := OpenBoltStore(filepath.Join(t.TempDir(), "feedback.db"), StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	err = s.PutFeedback(context.Background(), Feedback{RequestID: "a", Model: "m", Prompt: "p"})
	if !errors.Is(err, ErrStoreClosed) {
		t.Fatalf("got %v, want ErrStoreClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v, want nil", err)
	}
}

// A second Close racing the first returned at once, while the first was
// still applying the log: its caller (a deferred close after a server's
// shutdown) went on as if the files were closed and settled.
func TestConcurrentCloseWaitsForTheFirst(t *testing.T) {
	path := filepath.Join(t.TempDir(), "feedback.db")
	s := openStoreAt(t, path, StoreOptions{NoSync: true})
	if err := s.PutFeedback(context.Background(), Feedback{RequestID: "a", Model: "m", Prompt: "p", Outcome: Outcome{Score: Float(1)}}); err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	closeHook = func() { close(entered); <-release }
	defer func() { closeHook = nil }()
	first := make(chan error, 1)
	go func() { first <- s.Close() }()
	<-entered
	// The release comes late enough that a second Close which does not
	// wait has long returned; one that waits returns only after it.
	time.AfterFunc(100*time.Millisecond, func() { close(release) })
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := s.Ping(); !errors.Is(err, ErrStoreClosed) {
		t.Errorf("Ping after the second Close returned: %v; want ErrStoreClosed (the first was still closing the store)", err)
	}
	if err := <-first; err != nil {
		t.Fatalf("first Close: %v", err)
	}
	if _, err := os.Stat(path + walSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the feedback log after both closes: %v; want it applied and removed", err)
	}
}

func TestAppendOutcomeReadsBackAsMarshal(t *testing.T) {
	tests := []struct {
		name string
		o    Outcome
	}{
		{"an empty outcome", Outcome{}},
		{"a score alone", Outcome{Score: Float(1)}},
		{"every number", Outcome{Score: Float(0.25), LatencyMS: Float(123.5), CostUSD: Float(2e-7), Confidence: Float(-1e21)}},
		{"a cancelled call", Outcome{LatencyMS: Float(0), Cancelled: true}},
		{"a response with characters to escape", Outcome{Score: Float(0), Response: "<a>\n\"q\" \u2028 é"}},
		{"a completed proxied call", Outcome{LatencyMS: Float(51.2), CostUSD: Float(3.1e-5), Confidence: Float(-0.4), Response: "plain text",
			InputTokens: new(12), OutputTokens: new(0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := appendOutcome([]byte("prefix"), &tt.o)
			if err != nil {
				t.Fatal(err)
			}
			var got, want Outcome
			if err := json.Unmarshal(b[len("prefix"):], &got); err != nil {
				t.Fatalf("%s: %v", b, err)
			}
			m, _ := json.Marshal(&tt.o)
			if err := json.Unmarshal(m, &want); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %+v from %s, want %+v from %s", got, b[len("prefix"):], want, m)
			}
		})
	}
	t.Run("a NaN is an error, as json.Marshal's", func(t *testing.T) {
		if _, err := appendOutcome(nil, &Outcome{Score: Float(math.NaN())}); err == nil {
			t.Error("got nil error, want one")
		}
	})
}

func TestRecordFeedbackSaysWhenItReplaces(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	if err := s.AppendDecisions([]LogEntry{entry("a", t0, "fast", 0.1, `{"prompt":"hi"}`)}); err != nil {
		t.Fatal(err)
	}
	fb := Feedback{RequestID: "a", Model: "m", Outcome: Outcome{Score: Float(1)}}
	for i, want := range []bool{false, true} {
		res, err := s.RecordFeedback(ctx, fb)
		if err != nil || res.Replaced != want {
			t.Errorf("write %d: replaced %v, %v; want %v", i, res.Replaced, err, want)
		}
	}
	// Once the log is applied the db is what says so.
	if err := s.flush(); err != nil {
		t.Fatal(err)
	}
	if res, err := s.RecordFeedback(ctx, fb); err != nil || !res.Replaced {
		t.Errorf("after an apply: replaced %v, %v; want true", res.Replaced, err)
	}
	fb.Model = "n"
	if res, err := s.RecordFeedback(ctx, fb); err != nil || res.Replaced {
		t.Errorf("another model: replaced %v, %v; want false", res.Replaced, err)
	}
}

// A recorded request without text (a proxied Responses input of tool
// outputs only) is exported as one empty user message: a record without
// prompt or messages would stop every reader of the export at its line.
// An empty prompt (a legacy completion's "prompt": "", in any key case)
// is exported as one, and read back as one.
func TestExportOfARequestWithoutText(t *testing.T) {
	s := openTestStore(t)
	if err := s.AppendDecisions([]LogEntry{
		entry("a", t0, "fast", 0.1, `{"meta":{"tenant":"acme"}}`),
		entry("b", t0.Add(time.Second), "fast", 0.1, `{"prompt":"hi"}`),
		entry("c", t0.Add(2*time.Second), "fast", 0.1, `{"prompt":"","meta":{"tenant":"acme"}}`),
		entry("d", t0.Add(3*time.Second), "fast", 0.1, `{"Prompt":""}`),
	}); err != nil {
		t.Fatal(err)
	}
	recs := exportAll(t, s, ExportOptions{}) // reads the export back with the log reader
	if len(recs) != 4 || len(recs[0].Messages) != 1 || recs[0].Messages[0] != (Message{Role: "user"}) || recs[0].Meta["tenant"] != "acme" {
		t.Fatalf("exported %+v, want the first with one empty user message and its meta", recs)
	}
	for _, r := range recs[2:] {
		if r.Prompt != "" || r.Messages != nil {
			t.Errorf("exported %+v, want an empty prompt and no messages", r)
		}
	}
	if recs[2].Meta["tenant"] != "acme" {
		t.Errorf("exported %+v, want its meta", recs[2])
	}
}

func outcomeJSON(o Outcome) string {
	b, _ := json.Marshal(o)
	return string(b)
}

// A later write for a (request, model) adds its fields to what is stored:
// a client's score for an outcome the proxy recorded keeps the proxy's
// latency, cost, confidence and answer, whether that outcome is still in
// the log, already in the db, or in the same group commit.
func TestFeedbackMergesIntoTheStoredOutcome(t *testing.T) {
	ctx := context.Background()
	proxied := Outcome{LatencyMS: Float(120), CostUSD: Float(0.002), Confidence: Float(-0.4), Response: "42",
		InputTokens: new(int), OutputTokens: new(int)}
	*proxied.InputTokens, *proxied.OutputTokens = 7, 3
	want := proxied
	want.Score = Float(1)
	check := func(t *testing.T, s *BoltStore) {
		t.Helper()
		recs := exportAll(t, s, ExportOptions{})
		if len(recs) != 1 {
			t.Fatalf("%d records, want 1", len(recs))
		}
		if got := recs[0].Outcomes["fast"]; !reflect.DeepEqual(got, want) {
			t.Errorf("outcome = %s, want %s", outcomeJSON(got), outcomeJSON(want))
		}
	}
	for _, where := range []string{"log", "db", "group"} {
		t.Run("the recorded outcome in the "+where, func(t *testing.T) {
			s := openTestStore(t)
			if err := s.AppendDecisions([]LogEntry{entry("a", t0, "fast", 0.1, `{"prompt":"hi"}`)}); err != nil {
				t.Fatal(err)
			}
			rec := Feedback{RequestID: "a", Model: "fast", Outcome: proxied}
			score := Feedback{RequestID: "a", Model: "fast", Outcome: Outcome{Score: Float(1)}}
			if where == "group" {
				if err := s.PutFeedbackBatch(ctx, []Feedback{rec, score}); err != nil {
					t.Fatal(err)
				}
				check(t, s)
				return
			}
			if err := s.PutFeedback(ctx, rec); err != nil {
				t.Fatal(err)
			}
			if where == "db" {
				if err := s.flush(); err != nil {
					t.Fatal(err)
				}
			}
			res, err := s.RecordFeedback(ctx, score)
			if err != nil || !res.Replaced || res.Rescored {
				t.Fatalf("first score: %+v, %v; want replaced, not rescored", res, err)
			}
			check(t, s)
			// A correction replaces the score and keeps the rest.
			res, err = s.RecordFeedback(ctx, Feedback{RequestID: "a", Model: "fast", Outcome: Outcome{Score: Float(0)}})
			if err != nil || !res.Rescored {
				t.Fatalf("second score: %+v, %v; want rescored", res, err)
			}
			want := want
			want.Score = Float(0)
			if got := exportAll(t, s, ExportOptions{})[0].Outcomes["fast"]; !reflect.DeepEqual(got, want) {
				t.Errorf("after the correction: %s, want %s", outcomeJSON(got), outcomeJSON(want))
			}
		})
	}
	t.Run("the merged value survives a crash before the log is applied", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "f.db")
		s := openStoreAt(t, path, StoreOptions{})
		if err := s.AppendDecisions([]LogEntry{entry("a", t0, "fast", 0.1, `{"prompt":"hi"}`)}); err != nil {
			t.Fatal(err)
		}
		put(t, s, Feedback{RequestID: "a", Model: "fast", Outcome: proxied})
		put(t, s, Feedback{RequestID: "a", Model: "fast", Outcome: Outcome{Score: Float(1)}})
		crash(t, s)
		s = openStoreAt(t, path, StoreOptions{})
		defer s.Close()
		check(t, s)
	})
}

func TestRequestFingerprint(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	hi := PromptFingerprint("hi", nil)
	chat := PromptFingerprint("", []Message{{Role: "user", Content: "hi"}})
	if hi == chat {
		t.Fatal("a prompt and a chat with the same text share a fingerprint")
	}
	e := entry("client", t0, "fast", 0.1, `{"prompt":"hi"}`)
	e.Fingerprint = hi
	if err := s.AppendDecisions([]LogEntry{e, entry("generated", t0, "fast", 0.1, `{"messages":[{"role":"user","content":"hi"}]}`)}); err != nil {
		t.Fatal(err)
	}
	put(t, s, Feedback{RequestID: "by-feedback", Model: "m", Outcome: Outcome{Score: Float(1)}, Prompt: "from feedback"})
	for _, c := range []struct {
		name, id       string
		want           Fingerprint
		found, decided bool
	}{
		{"an id stored with its fingerprint", "client", hi, true, true},
		{"an id stored without one is hashed from its record", "generated", chat, true, true},
		{"an id created by feedback still in the log", "by-feedback", PromptFingerprint("from feedback", nil), true, false},
		{"an unknown id", "nope", Fingerprint{}, false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, found, decided, err := s.RequestFingerprint(c.id)
			if err != nil || found != c.found || got != c.want || decided != c.decided {
				t.Errorf("RequestFingerprint(%q) = %x, %v, decided %v, %v; want %x, %v, decided %v", c.id, got, found, decided, err, c.want, c.found, c.decided)
			}
		})
	}
	if err := s.flush(); err != nil {
		t.Fatal(err)
	}
	if got, found, decided, err := s.RequestFingerprint("by-feedback"); err != nil || !found || decided || got != PromptFingerprint("from feedback", nil) {
		t.Errorf("after the log is applied: %x, %v, decided %v, %v; want found and undecided", got, found, decided, err)
	}
	_ = ctx
}

func TestAppendDecisionsKeepsAnIDsRecord(t *testing.T) {
	s := openTestStore(t)
	first := entry("a", t0, "fast", 0.1, `{"prompt":"hi"}`)
	again := entry("a", t0.Add(time.Hour), "escalate", 0.9, `{"prompt":"hi"}`)
	if err := s.AppendDecisions([]LogEntry{first}); err != nil {
		t.Fatal(err)
	}
	put(t, s, Feedback{RequestID: "a", Model: "m", Outcome: Outcome{Score: Float(1)}})
	put(t, s, Feedback{RequestID: "fb", Model: "m", Outcome: Outcome{Score: Float(1)}, Prompt: "later routed", TS: t0})
	routed := entry("fb", t0.Add(time.Minute), "speculate", 0.5, `{"prompt":"later routed"}`)
	if err := s.AppendDecisions([]LogEntry{again, routed}); err != nil {
		t.Fatal(err)
	}
	recs := exportAll(t, s, ExportOptions{})
	if len(recs) != 2 {
		t.Fatalf("%d records, want 2: %+v", len(recs), recs)
	}
	for _, r := range recs {
		switch r.ID {
		case "a":
			if r.Decision.Kind != "fast" || r.Outcomes["m"].Score == nil {
				t.Errorf("a = %+v, want the first decision and its feedback kept", r)
			}
		case "fb":
			if r.Decision == nil || r.Decision.Kind != "speculate" || !r.TS.Equal(t0.Add(time.Minute)) || r.Outcomes["m"].Score == nil {
				t.Errorf("fb = %+v, want the feedback-created record to take the decision", r)
			}
		}
	}
}

func TestPingFailsAfterADiskError(t *testing.T) {
	s := openTestStore(t)
	if err := s.Ping(); err != nil {
		t.Fatal(err)
	}
	// A disk error on the next append: the log's file is gone under it.
	s.wal.f.Close()
	err := s.PutFeedback(context.Background(), Feedback{RequestID: "x", Model: "m", Outcome: Outcome{Score: Float(1)}, Prompt: "p"})
	if err == nil {
		t.Fatal("a write to a closed log succeeded")
	}
	if err := s.Ping(); err == nil || !errors.Is(err, ErrWritesFailing) {
		t.Errorf("Ping() = %v, want the write failure", err)
	}
}

func TestPrune(t *testing.T) {
	ctx := context.Background()
	fill := func(t *testing.T) *BoltStore {
		s := openTestStore(t)
		var entries []LogEntry
		for i := range 400 {
			entries = append(entries, entry(fmt.Sprintf("r%03d", i), t0.Add(time.Duration(i)*time.Minute), "fast", 0.1,
				fmt.Sprintf(`{"prompt":%q}`, strings.Repeat("x", 3000))))
		}
		if err := s.AppendDecisions(entries); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 400; i += 4 {
			put(t, s, Feedback{RequestID: fmt.Sprintf("r%03d", i), Model: "m", Outcome: Outcome{Score: Float(1)}})
		}
		return s
	}
	t.Run("max age removes older records and their feedback", func(t *testing.T) {
		s := fill(t)
		st, err := s.Prune(ctx, RetentionOptions{MaxAge: 100 * time.Minute, Now: func() time.Time { return t0.Add(400 * time.Minute) }})
		if err != nil {
			t.Fatal(err)
		}
		if st.ByAge != 300 || st.WithFeedback != 75 {
			t.Errorf("pruned %+v, want 300 by age, 75 of them with feedback", st)
		}
		recs := exportAll(t, s, ExportOptions{})
		if len(recs) != 100 || recs[0].ID != "r300" {
			t.Errorf("%d records left from %s, want 100 from r300", len(recs), recs[0].ID)
		}
		if ok, _ := s.HasRequest("r000"); ok {
			t.Error("r000's id is still known")
		}
	})
	t.Run("max bytes removes records without feedback first", func(t *testing.T) {
		s := fill(t)
		used := s.Usage().UsedBytes
		limit := used * 6 / 10
		st, err := s.Prune(ctx, RetentionOptions{MaxBytes: limit})
		if err != nil {
			t.Fatal(err)
		}
		if after := s.Usage().UsedBytes; after > int64(float64(limit)*PruneTarget) {
			t.Errorf("used %d bytes after pruning to %d, want at most %d", after, limit, int64(float64(limit)*PruneTarget))
		}
		if st.BySize == 0 || st.WithFeedback != 0 {
			t.Errorf("pruned %+v, want records without feedback only", st)
		}
		n := 0
		for _, r := range exportAll(t, s, ExportOptions{}) {
			if len(r.Outcomes) > 0 {
				n++
			}
		}
		if n != 100 {
			t.Errorf("%d records with feedback left, want all 100", n)
		}
		if st, err := s.Prune(ctx, RetentionOptions{MaxBytes: limit}); err != nil || st.BySize != 0 {
			t.Errorf("a second prune removed %+v, %v; want nothing under the bound", st, err)
		}
	})
	t.Run("when only records with feedback are left, the oldest of them go", func(t *testing.T) {
		s := fill(t)
		st, err := s.Prune(ctx, RetentionOptions{MaxBytes: s.Usage().UsedBytes / 5})
		if err != nil {
			t.Fatal(err)
		}
		if st.WithFeedback == 0 || st.BySize <= 300 {
			t.Errorf("pruned %+v, want every record without feedback and some with", st)
		}
		recs := exportAll(t, s, ExportOptions{})
		if len(recs) == 0 || recs[len(recs)-1].ID != "r396" {
			t.Errorf("records left end at %v, want the newest with feedback, r396", recs)
		}
	})
}

// A batch of feedback is committed together: each write that finds its
// request survives a reopen, and the error names the one that did not.
func TestPutFeedbackBatch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "feedback.db")
	s, err := OpenBoltStore(path, StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AppendDecisions([]LogEntry{entry("a", t0, "speculate", 0.5, `{"prompt":"hi"}`), entry("b", t0.Add(time.Second), "fast", 0.1, `{"prompt":"yo"}`)}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ok := []Feedback{
		{RequestID: "a", Model: "fast", Outcome: Outcome{Score: Float(1)}},
		{RequestID: "a", Model: "strong", Outcome: Outcome{Score: Float(0)}},
		{RequestID: "b", Model: "fast", Outcome: Outcome{Score: Float(1)}},
	}
	if err := s.PutFeedbackBatch(ctx, ok); err != nil {
		t.Fatalf("PutFeedbackBatch: %v", err)
	}
	err = s.PutFeedbackBatch(ctx, []Feedback{{RequestID: "b", Model: "strong", Outcome: Outcome{Score: Float(1)}}, {RequestID: "nope", Model: "fast"}})
	if !errors.Is(err, ErrUnknownRequest) || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("got %v, want ErrUnknownRequest naming nope", err)
	}
	if err := s.PutFeedbackBatch(ctx, []Feedback{{RequestID: "a", Model: ""}}); err == nil || !strings.Contains(err.Error(), "feedback 1 of 1") {
		t.Fatalf("got %v, want a key error naming the write", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.PutFeedbackBatch(ctx, ok); !errors.Is(err, ErrStoreClosed) {
		t.Fatalf("after Close got %v, want ErrStoreClosed", err)
	}
	s, err = OpenBoltStore(path, StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	recs := exportAll(t, s, ExportOptions{})
	if len(recs) != 2 || len(recs[0].Outcomes) != 2 || len(recs[1].Outcomes) != 2 {
		t.Fatalf("after reopen got %+v, want a with fast+strong and b with fast+strong", recs)
	}
}

func TestOpenBoltStoreNamesAMissingFolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nodir")
	_, err := OpenBoltStore(filepath.Join(dir, "x.db"), StoreOptions{})
	if err == nil || !strings.Contains(err.Error(), "its folder "+dir+" does not exist; create it") {
		t.Errorf("err = %v, want the missing folder named", err)
	}
	if _, serr := os.Stat(dir); !os.IsNotExist(serr) {
		t.Errorf("the folder was created")
	}
}

// Feedback that carries its prompt for an id the store already holds with
// another prompt is refused, not stored: its score would label the stored
// prompt. The server checks first, but a route of the id could commit
// between its check and the write.
func TestFeedbackWithAnotherPromptIsAConflict(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	routed := entry("routed", t0, "fast", 0.1, `{"prompt":"prompt B"}`)
	routed.Fingerprint = PromptFingerprint("prompt B", nil)
	if err := s.AppendDecisions([]LogEntry{routed, entry("generated", t0, "fast", 0.1, `{"prompt":"prompt C"}`)}); err != nil {
		t.Fatal(err)
	}
	put(t, s, Feedback{RequestID: "created", Model: "m", Outcome: Outcome{Score: Float(1)}, Prompt: "prompt D"})
	for _, c := range []struct {
		id, prompt string
		conflict   bool
	}{
		{"routed", "prompt A", true},
		{"routed", "prompt B", false},
		{"generated", "prompt A", true}, // stored without a fingerprint: hashed from its record
		{"generated", "prompt C", false},
		{"created", "prompt A", true}, // created by feedback still in the log
		{"created", "prompt D", false},
	} {
		_, err := s.RecordFeedback(ctx, Feedback{RequestID: c.id, Model: "m2", Outcome: Outcome{Score: Float(0)}, Prompt: c.prompt})
		if got := errors.Is(err, ErrIDConflict); got != c.conflict || (!c.conflict && err != nil) {
			t.Errorf("feedback for %s with %q: %v; want conflict %v", c.id, c.prompt, err, c.conflict)
		}
	}
	var buf bytes.Buffer
	if _, err := s.Export(ctx, &buf, ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var r Record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		if o, ok := r.Outcomes["m2"]; !ok || *o.Score != 0 {
			t.Errorf("%s: m2 outcome %+v, want the one score posted with its own prompt", r.ID, r.Outcomes)
		}
	}
}

// Damage inside one stored request fails the feedback about it, saying
// so, and not the store: it failed every later write, for any id, as a
// disk error, and Ping with it.
func TestDamagedRecordFailsOnlyItsFeedback(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	if err := s.AppendDecisions([]LogEntry{entry("a", t0, "fast", 0.1, `{"prompt":"hi"}`)}); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketIDs).Put([]byte("a"), []byte("short")) }); err != nil {
		t.Fatal(err)
	}
	err := s.PutFeedback(ctx, Feedback{RequestID: "a", Model: "m", Outcome: Outcome{Score: Float(1)}, Prompt: "hi"})
	if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), `"a"`) || !strings.Contains(err.Error(), "triage feedback check") {
		t.Errorf("feedback for the damaged record: %v, want ErrDamaged naming it and the check", err)
	}
	if err := s.PutFeedback(ctx, Feedback{RequestID: "b", Model: "m", Outcome: Outcome{Score: Float(1)}, Prompt: "other"}); err != nil {
		t.Errorf("feedback for another request: %v, want it written", err)
	}
	if err := s.Ping(); err != nil {
		t.Errorf("Ping() = %v, want nil", err)
	}
}

// A server stopped while a snapshot was being downloaded (killed, or shut
// down with a client that stopped reading) left the snapshot's temporary
// copy, as big as the db, beside it for good. Close removes it, and so
// does the next open, which says which it removed.
func TestSnapshotCopiesDoNotOutliveTheStore(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "feedback.db")
	s, err := OpenBoltStore(path, StoreOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AppendDecisions([]LogEntry{entry("a", t0, "fast", 0.1, `{"prompt":"p"}`)}); err != nil {
		t.Fatal(err)
	}
	// A snapshot whose client stopped reading.
	stuck := make(chan struct{})
	defer close(stuck)
	started := make(chan struct{})
	go s.Snapshot(context.Background(), writerFunc(func(p []byte) (int, error) {
		select {
		case <-started:
		default:
			close(started)
		}
		<-stuck
		return 0, io.ErrClosedPipe
	}))
	<-started
	copies := func() []string {
		m, _ := filepath.Glob(filepath.Join(dir, ".feedback.db.snapshot-*"))
		return m
	}
	if len(copies()) != 1 {
		t.Fatalf("snapshot copies while streaming: %v, want one", copies())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if c := copies(); len(c) != 0 {
		t.Errorf("the store closed with a snapshot stuck streaming and left its copy: %v", c)
	}
	// A copy left by a killed process, and files that are not copies of
	// this db's snapshots.
	left := filepath.Join(dir, ".feedback.db.snapshot-123456")
	keep := []string{filepath.Join(dir, ".feedback.db.snapshot-x"), filepath.Join(dir, ".other.db.snapshot-1")}
	for _, p := range append([]string{left}, keep...) {
		if err := os.WriteFile(p, []byte("copy"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s, err = OpenBoltStore(path, StoreOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := os.Stat(left); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("open left the stale snapshot copy %s (%v)", left, err)
	}
	if got := s.RemovedSnapshots(); len(got) != 1 || got[0] != left {
		t.Errorf("RemovedSnapshots = %v, want [%s]", got, left)
	}
	for _, p := range keep {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("open removed %s, which is not this db's snapshot copy: %v", p, err)
		}
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
