package proxy

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/triage-router/triage/datasets"
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

// A legacy completion's empty prompt ("prompt": "", which the proxy
// routes as OpenAI takes it) is exported as an empty prompt and read back
// by the log reader as a completion, like a completion with text; a
// request without text (a Responses input of tool outputs only) is still
// one empty user message. The empty prompt was recorded without its key,
// and so exported as an empty user message, a chat request.
func TestExportKeepsAnEmptyCompletionPrompt(t *testing.T) {
	s, err := datasets.OpenBoltStore(filepath.Join(t.TempDir(), "f.db"), datasets.StoreOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := newRig(t, rigOptions{recorder: StoreRecorder{Store: s}})
	ids := map[string]string{}
	for _, tt := range []struct{ name, path, body string }{
		{"empty", "/v1/completions", `{"model":"triage","prompt":""}`},
		{"text", "/v1/completions", `{"model":"triage","prompt":"F hello"}`},
	} {
		resp, err := http.Post(r.url+tt.path, "application/json", strings.NewReader(tt.body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d: %s", tt.body, resp.StatusCode, b)
		}
		ids[tt.name] = resp.Header.Get(HeaderRequestID)
	}
	waitFor(t, "the proxy's handlers to end", func() bool { return r.active.Load() == 0 })
	if err := r.h.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The sims answer message items only, so this one is recorded as the
	// proxy records a Responses input of tool outputs only.
	ids["tools"] = "tools"
	tools := &Recording{RequestID: "tools", TS: time.Unix(1_800_000_000, 0), Decision: datasets.Decision{Kind: "fast"}}
	if err := (StoreRecorder{Store: s}).Record(context.Background(), []*Recording{tools}); err != nil {
		t.Fatal(err)
	}
	var export bytes.Buffer
	if _, err := s.Export(context.Background(), &export, datasets.ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	// Read back, written again as feedback export --from writes what it
	// reads, and read once more: the second file must say the same.
	read := func(t *testing.T, b []byte) map[string]datasets.Record {
		t.Helper()
		out := map[string]datasets.Record{}
		rd := datasets.NewReader(bytes.NewReader(b), "export.jsonl", datasets.ReadOptions{AllowMissingScore: true})
		for {
			rec, err := rd.Next()
			if err == io.EOF {
				return out
			}
			if err != nil {
				t.Fatalf("%v in the export:\n%s", err, b)
			}
			out[rec.ID] = rec
		}
	}
	first := read(t, export.Bytes())
	var again bytes.Buffer
	w := datasets.NewWriter(&again)
	for _, id := range []string{ids["empty"], ids["text"], ids["tools"]} {
		rec := first[id]
		if err := w.Write(&rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, pass := range []struct {
		name string
		recs map[string]datasets.Record
	}{{"the export", first}, {"the export written again", read(t, again.Bytes())}} {
		t.Run(pass.name+" keeps a completion's empty prompt", func(t *testing.T) {
			for _, tt := range []struct {
				name, prompt string
				messages     []datasets.Message
			}{
				{"empty", "", nil},
				{"text", "F hello", nil},
				{"tools", "", []datasets.Message{{Role: "user"}}},
			} {
				rec, ok := pass.recs[ids[tt.name]]
				if !ok {
					t.Fatalf("the %s request is not in it", tt.name)
				}
				if rec.Prompt != tt.prompt || !reflect.DeepEqual(rec.Messages, tt.messages) {
					t.Errorf("the %s request: prompt %q, messages %+v; want prompt %q, messages %+v", tt.name, rec.Prompt, rec.Messages, tt.prompt, tt.messages)
				}
			}
		})
	}
	if !bytes.Contains(again.Bytes(), []byte(`{"id":"`+ids["empty"]+`","prompt":"",`)) {
		t.Errorf("the empty prompt written as\n%s\nwant \"prompt\": \"\" after its id", again.Bytes())
	}
}
