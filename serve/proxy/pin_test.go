package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/triage-router/triage/datasets"
)

// ownResponses makes a tier's upstream keep its Responses API state to
// itself, as two separate servers do: it notes the response ids it gives
// out, a request that continues another is its 404, and GET and DELETE
// /v1/responses/{id}, .../cancel and .../input_items answer for its own
// ids alone.
type ownResponses struct {
	name string
	next http.Handler

	mu  sync.Mutex
	ids map[string]bool
	// continued are the previous_response_ids of the requests it took;
	// posts counts every POST /v1/responses, calls every request.
	continued []string
	posts     int
	calls     int
}

func newOwnResponses(name string, next http.Handler) *ownResponses {
	return &ownResponses{name: name, next: next, ids: map[string]bool{}}
}

func (o *ownResponses) knows(id string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.ids[id]
}

func notFound(w http.ResponseWriter, param, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusNotFound)
	fmt.Fprintf(w, `{"error":{"message":%q,"type":"invalid_request_error","param":%q,"code":"not_found"}}`, msg, param)
}

func (o *ownResponses) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	o.mu.Lock()
	o.calls++
	o.mu.Unlock()
	if rest, ok := strings.CutPrefix(req.URL.Path, "/v1/responses/"); ok {
		id, sub, _ := strings.Cut(rest, "/")
		if !o.knows(id) {
			notFound(w, "", fmt.Sprintf("No response found with id '%s'.", id))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Request-Id", "req_get_"+o.name)
		switch {
		case req.Method == http.MethodGet && sub == "" && req.URL.Query().Get("stream") == "true":
			// A background response's events, from starting_after on.
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprintf(w, "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"later\",\"sequence_number\":%s}\n\n", req.URL.Query().Get("starting_after"))
			w.(http.Flusher).Flush()
			fmt.Fprintf(w, "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":%q,\"status\":\"completed\",\"output\":[]}}\n\n", id)
		case req.Method == http.MethodGet && sub == "":
			fmt.Fprintf(w, `{"id":%q,"object":"response","status":"completed","model":"%s-model","tier_seen":%q,"output":[]}`, id, o.name, req.URL.RawQuery)
		case req.Method == http.MethodDelete && sub == "":
			fmt.Fprintf(w, `{"id":%q,"object":"response.deleted","deleted":true}`, id)
		case req.Method == http.MethodPost && sub == "cancel":
			fmt.Fprintf(w, `{"id":%q,"object":"response","status":"cancelled","output":[]}`, id)
		case req.Method == http.MethodGet && sub == "input_items":
			fmt.Fprintf(w, `{"object":"list","data":[{"id":"msg_in","type":"message","role":"user","content":[{"type":"input_text","text":"%s"}]}],"has_more":false}`, o.name)
		default:
			notFound(w, "", "no such route")
		}
		return
	}
	if req.URL.Path != "/v1/responses" {
		o.next.ServeHTTP(w, req)
		return
	}
	body, _ := io.ReadAll(req.Body)
	req.Body = io.NopCloser(bytes.NewReader(body))
	o.mu.Lock()
	o.posts++
	o.mu.Unlock()
	var r struct {
		Prev string `json:"previous_response_id"`
	}
	json.Unmarshal(body, &r)
	if r.Prev != "" {
		if !o.knows(r.Prev) {
			notFound(w, "previous_response_id", fmt.Sprintf("Previous response with id '%s' not found.", r.Prev))
			return
		}
		o.mu.Lock()
		o.continued = append(o.continued, r.Prev)
		o.mu.Unlock()
	}
	o.next.ServeHTTP(&idWriter{ResponseWriter: w, o: o}, req)
}

var simRespID = regexp.MustCompile(`resp_sim_[0-9a-f]+_[0-9]+`)

// idWriter notes the sim's response ids as the tier's before the proxy
// reads them.
type idWriter struct {
	http.ResponseWriter
	o *ownResponses
}

func (w *idWriter) Write(b []byte) (int, error) {
	w.o.mu.Lock()
	for _, id := range simRespID.FindAll(b, -1) {
		w.o.ids[string(id)] = true
	}
	w.o.mu.Unlock()
	return w.ResponseWriter.Write(b)
}

func (w *idWriter) Flush() { w.ResponseWriter.(http.Flusher).Flush() }

// pinRig is a rig whose tiers keep their Responses API state apart,
// recording into a feedback db at path (opened here) when path is set.
type pinRig struct {
	*rig
	fast, strong *ownResponses
	store        *datasets.BoltStore
	path         string
}

func newPinRig(t *testing.T, path string) *pinRig {
	t.Helper()
	p := &pinRig{path: path}
	o := rigOptions{upstream: func(tier string, next http.Handler) http.Handler {
		own := newOwnResponses(tier, next)
		if tier == "fast" {
			p.fast = own
		} else {
			p.strong = own
		}
		return own
	}}
	if path != "" {
		p.openStore(t)
		o.recorder, o.responses = StoreRecorder{Store: p.store}, p.store
	}
	p.rig = newRig(t, o)
	return p
}

func (p *pinRig) openStore(t *testing.T) {
	t.Helper()
	s, err := datasets.OpenBoltStore(p.path, datasets.StoreOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	p.store = s
	t.Cleanup(func() { s.Close() })
}

// tierOf names the tier that gave out a response id, or "".
func (p *pinRig) tierOf(id string) string {
	for _, o := range []*ownResponses{p.fast, p.strong} {
		if o.knows(id) {
			return o.name
		}
	}
	return ""
}

// restart stops the proxy as a server's shutdown does (its recordings
// written, the db closed) and starts another on the db opened again,
// with the same upstreams.
func (p *pinRig) restart(t *testing.T) {
	t.Helper()
	waitFor(t, "the handlers to end", func() bool { return p.active.Load() == 0 })
	if err := p.h.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := p.store.Close(); err != nil {
		t.Fatal(err)
	}
	p.openStore(t)
	p.reg = prometheus.NewRegistry()
	p.deps.Registry = p.reg
	p.deps.Recorder, p.deps.Responses = StoreRecorder{Store: p.store}, p.store
	p.start(t)
}

// respResult is a Responses API answer as a client reads it.
type respResult struct {
	status          int
	decision, model string
	id              string // the response's id
	body            []byte
	streamed        bool
}

// ask posts a Responses API request: input, optionally continuing prev,
// plain or streamed.
func (p *pinRig) ask(t *testing.T, input, prev string, stream bool) respResult {
	t.Helper()
	return p.askAs(t, "", "triage", input, prev, stream)
}

// testClientHeader names, in the rig's requests, the client key the
// request stands for (WithClientName), as the server's check of client
// keys would put it.
const testClientHeader = "X-Test-Client"

// askAs is ask by the client key client ("" for none), for model.
func (p *pinRig) askAs(t *testing.T, client, model, input, prev string, stream bool) respResult {
	t.Helper()
	req := map[string]any{"model": model, "input": input}
	if prev != "" {
		req["previous_response_id"] = prev
	}
	if stream {
		req["stream"] = true
	}
	b, _ := json.Marshal(req)
	hr, _ := http.NewRequest(http.MethodPost, p.url+"/v1/responses", bytes.NewReader(b))
	hr.Header.Set("Content-Type", "application/json")
	if client != "" {
		hr.Header.Set(testClientHeader, client)
	}
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	res := respResult{status: resp.StatusCode, decision: resp.Header.Get(HeaderDecision), model: resp.Header.Get(HeaderModel), body: body}
	var obj struct {
		ID       string `json:"id"`
		Type     string `json:"type"`
		Response *struct {
			ID string `json:"id"`
		} `json:"response"`
	}
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		json.Unmarshal(body, &obj)
		res.id = obj.ID
		return res
	}
	res.streamed = true
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		d, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		obj.Response = nil
		if err := json.Unmarshal([]byte(d), &obj); err != nil {
			t.Fatalf("event %q: %v", d, err)
		}
		if obj.Type == "response.created" && obj.Response != nil {
			res.id = obj.Response.ID
		}
	}
	return res
}

// TestPreviousResponsePinsTheTier: a follow-up naming a stored response
// goes to the tier that stored it, whatever the router says of its new
// input, plain and streamed, and after a restart on the same db; it is
// recorded and counted as pinned. An id the proxy never relayed routes
// as any request, and the tier it reaches answers for itself.
func TestPreviousResponsePinsTheTier(t *testing.T) {
	p := newPinRig(t, filepath.Join(t.TempDir(), "feedback.db"))
	// "E ..." escalates and "F ..." goes fast (fakeRouter).
	first := p.ask(t, "E explain the proof", "", false)
	if first.status != 200 || p.tierOf(first.id) != "strong" {
		t.Fatalf("first turn: %d %s id %q; want a strong answer", first.status, first.body, first.id)
	}
	streamed := p.ask(t, "F hello", "", true)
	if streamed.status != 200 || !streamed.streamed || p.tierOf(streamed.id) != "fast" {
		t.Fatalf("streamed first turn: %d %s id %q; want a fast stream", streamed.status, streamed.body, streamed.id)
	}
	check := func(t *testing.T, prev, input string, stream bool, wantTier string) respResult {
		t.Helper()
		got := p.ask(t, input, prev, stream)
		if got.status != 200 || p.tierOf(got.id) != wantTier {
			t.Fatalf("follow-up of %s: %d %s; want %s's answer", prev, got.status, got.body, wantTier)
		}
		if got.streamed != stream {
			t.Errorf("streamed %v, want %v", got.streamed, stream)
		}
		return got
	}
	t.Run("a follow-up the router would send fast reaches the strong tier that stored its response", func(t *testing.T) {
		got := check(t, first.id, "F thanks, and the next step?", false, "strong")
		if got.decision != "escalate+pinned" || got.model != "strong-model" {
			t.Errorf("X-Triage-Decision %q, X-Triage-Model %q; want escalate+pinned, strong-model", got.decision, got.model)
		}
	})
	t.Run("a streamed follow-up the router would speculate reaches the fast tier, no race", func(t *testing.T) {
		before := p.strongPosts()
		got := check(t, streamed.id, "S accept", true, "fast")
		if got.decision != "fast+pinned" {
			t.Errorf("X-Triage-Decision %q, want fast+pinned", got.decision)
		}
		if n := p.strongPosts() - before; n != 0 {
			t.Errorf("the strong tier got %d calls; a pinned request races nothing", n)
		}
	})
	t.Run("an id the proxy never relayed routes as before", func(t *testing.T) {
		got := p.ask(t, "F hello", "resp_elsewhere_1", false)
		if got.status != http.StatusNotFound || got.decision != "fast" {
			t.Errorf("%d %q %s; want the fast tier's own 404, routed fast", got.status, got.decision, got.body)
		}
	})
	chained := check(t, first.id, "F one more", false, "strong")
	p.restart(t)
	t.Run("after a restart on the same db, plain and streamed follow-ups still reach their tiers", func(t *testing.T) {
		check(t, chained.id, "F and after a deploy?", false, "strong")
		check(t, streamed.id, "E after a deploy, streamed", true, "fast")
		// Counted on the new process's registry: two pinned requests.
		want := `
# HELP triage_proxy_pinned_total Responses API requests sent to the tier that stored the response they continue (previous_response_id), whatever the router said, by tier.
# TYPE triage_proxy_pinned_total counter
triage_proxy_pinned_total{tier="fast"} 1
triage_proxy_pinned_total{tier="strong"} 1
`
		if err := testutil.GatherAndCompare(p.reg, strings.NewReader(want), "triage_proxy_pinned_total"); err != nil {
			t.Error(err)
		}
	})
	t.Run("the pinned decisions are recorded as such, without a propensity", func(t *testing.T) {
		waitFor(t, "the handlers to end", func() bool { return p.active.Load() == 0 })
		if err := p.h.FlushRecordings(context.Background()); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if _, err := p.store.Export(context.Background(), &buf, datasets.ExportOptions{}); err != nil {
			t.Fatal(err)
		}
		pinned := 0
		for line := range strings.SplitSeq(strings.TrimSpace(buf.String()), "\n") {
			var rec datasets.Record
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatal(err)
			}
			if rec.Decision != nil && rec.Decision.Pinned {
				pinned++
				if rec.Decision.Propensity != 0 {
					t.Errorf("%s: pinned with propensity %v; the policy did not choose it", rec.ID, rec.Decision.Propensity)
				}
			}
		}
		if pinned != 5 {
			t.Errorf("%d pinned records, want 5 (three before the restart, two after)\n%s", pinned, buf.String())
		}
	})
}

// strongPosts is how many Responses API requests the strong tier has
// taken.
func (p *pinRig) strongPosts() int {
	p.strong.mu.Lock()
	defer p.strong.mu.Unlock()
	return p.strong.posts
}

// TestResponseTiersMemoryIsBounded: past its cap the oldest entries
// leave memory; without a store they are then unknown, and an expired
// entry is unknown too.
func TestResponseTiersMemoryIsBounded(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	ts := []*tier{{name: "fast"}, {name: "strong", idx: 1}}
	p := newResponseTiers(nil, time.Hour, 2, func() time.Time { return now }, nil, func(string) *tier { return nil })
	p.remember("a", ts[0], "")
	p.remember("b", ts[1], "")
	p.remember("a", ts[0], "") // renewed, not added twice
	p.remember("c", ts[1], "")
	for id, want := range map[string]*tier{"a": nil, "b": ts[1], "c": ts[1]} {
		if got, _ := p.lookup(id); got != want {
			t.Errorf("lookup(%s) = %v, want %v", id, got, want)
		}
	}
	now = now.Add(time.Hour)
	if got, _ := p.lookup("c"); got != nil {
		t.Errorf("an entry an hour old with a ttl of an hour is still found: %v", got)
	}
}

// TestUnkeyableResponseIDDoesNotFailItsBatch: a response id the feedback
// db cannot key (longer than an id may be, or not UTF-8) is left out of
// the db. Written with the others, it made the db refuse them all, and
// the batch's recordings were counted and logged as failed.
func TestUnkeyableResponseIDDoesNotFailItsBatch(t *testing.T) {
	s, err := datasets.OpenBoltStore(filepath.Join(t.TempDir(), "f.db"), datasets.StoreOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ts := time.Unix(1_800_000_000, 0)
	rec := func(id, resp string) *Recording {
		return &Recording{RequestID: id, TS: ts, Prompt: "hi", Decision: datasets.Decision{Kind: "fast"},
			Response: &datasets.StoredResponse{ID: resp, Tier: "fast", Expires: ts.Add(time.Hour)}}
	}
	batch := []*Recording{rec("a", "resp_good"), rec("b", strings.Repeat("r", datasets.MaxIDBytes+1)), rec("c", "resp_\xff")}
	if err := (StoreRecorder{Store: s}).Record(context.Background(), batch); err != nil {
		t.Fatalf("the batch failed: %v", err)
	}
	for _, id := range []string{"a", "b", "c"} {
		if ok, err := s.HasRequest(id); !ok || err != nil {
			t.Errorf("request %s not recorded: %v", id, err)
		}
	}
	if got, found, _ := s.LookupResponse("resp_good", ts); !found || got.Tier != "fast" {
		t.Errorf("the keyable id was not kept: %+v, %v", got, found)
	}
}

// failingLog fails its store's decision-log commits while fail is set, as
// a disk error does.
type failingLog struct {
	*datasets.BoltStore
	fail bool
}

func (s *failingLog) AppendDecisions(e []datasets.LogEntry) error {
	if s.fail {
		return errors.New("write decision log: input/output error")
	}
	return s.BoltStore.AppendDecisions(e)
}

// TestResponseTiersCommitWithTheirRecords: a StoreRecorder writes which
// tier stored each response in the commit of the batch's records, so a
// batch is recorded with its entries or not at all. The entries went in a
// commit of their own after the records and the outcomes (a second fsync
// per batch): when that one failed, Record failed a batch whose records
// were already in the db, and the recordings were counted as failed.
func TestResponseTiersCommitWithTheirRecords(t *testing.T) {
	s, err := datasets.OpenBoltStore(filepath.Join(t.TempDir(), "f.db"), datasets.StoreOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ts := time.Unix(1_800_000_000, 0)
	batch := []*Recording{{RequestID: "a", TS: ts, Prompt: "hi", Decision: datasets.Decision{Kind: "fast"},
		Outcomes: map[string]datasets.Outcome{"fast-model": {Response: "hello"}},
		Response: &datasets.StoredResponse{ID: "resp_a", Tier: "fast", Expires: ts.Add(time.Hour)}}}
	store := &failingLog{BoltStore: s}
	for _, fail := range []bool{true, false} {
		store.fail = fail
		err := (StoreRecorder{Store: store}).Record(context.Background(), batch)
		if (err != nil) != fail {
			t.Fatalf("with the disk failing %v: Record: %v", fail, err)
		}
		has, err := s.HasRequest("a")
		if err != nil {
			t.Fatal(err)
		}
		_, found, err := s.LookupResponse("resp_a", ts)
		if err != nil {
			t.Fatal(err)
		}
		if has == fail || found == fail {
			t.Errorf("with the disk failing %v: request recorded %v, response tier kept %v; want both %v", fail, has, found, !fail)
		}
	}
}

// upstreamCalls is how many requests both tiers have taken.
func (p *pinRig) upstreamCalls() int {
	n := 0
	for _, o := range []*ownResponses{p.fast, p.strong} {
		o.mu.Lock()
		n += o.calls
		o.mu.Unlock()
	}
	return n
}

// storedAs sends a request about a stored response by the client key
// client and returns its status, body and X-Triage-Model.
func (p *pinRig) storedAs(t *testing.T, client, method, path string) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest(method, p.url+path, nil)
	req.Header.Set(testClientHeader, client)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header.Get(HeaderModel)
}

// TestStoredResponsesStayWithTheirClient: a response made with one
// client key is another key's 404 on every route about it (the body an
// unknown id gets) and as a previous_response_id (OpenAI's
// previous_response_not_found, routed or naming a tier), answered by the
// proxy without calling an upstream, also after a restart on the same
// db; its own client still reads, continues and deletes it. The proxy
// calls the tiers with its own key, so they could not tell the clients
// apart: key B read, continued and deleted key A's response.
func TestStoredResponsesStayWithTheirClient(t *testing.T) {
	p := newPinRig(t, filepath.Join(t.TempDir(), "feedback.db"))
	first := p.askAs(t, "alice", "triage", "E explain the proof", "", false)
	if first.status != 200 || p.tierOf(first.id) != "strong" {
		t.Fatalf("alice's first turn: %d %s; want a strong answer", first.status, first.body)
	}
	routes := []struct{ method, path string }{
		{http.MethodGet, "/v1/responses/{id}"}, {http.MethodGet, "/v1/responses/{id}/input_items"},
		{http.MethodPost, "/v1/responses/{id}/cancel"}, {http.MethodDelete, "/v1/responses/{id}"},
	}
	refused := 0 // the follow-ups the proxy refused, for the metrics
	others := func(t *testing.T, id string) {
		for _, r := range routes {
			t.Run("bob's "+r.method+" "+r.path+" is the 404 of an unknown id", func(t *testing.T) {
				before := p.upstreamCalls()
				_, unknown, _ := p.storedAs(t, "bob", r.method, strings.Replace(r.path, "{id}", "resp_never_relayed", 1))
				status, body, model := p.storedAs(t, "bob", r.method, strings.Replace(r.path, "{id}", id, 1))
				if want := strings.ReplaceAll(unknown, "resp_never_relayed", id); status != http.StatusNotFound || body != want || model != "none" {
					t.Errorf("%d %s (X-Triage-Model %q); want 404 %s", status, body, model, want)
				}
				if n := p.upstreamCalls() - before; n != 0 {
					t.Errorf("the upstreams got %d calls", n)
				}
			})
		}
		for _, model := range []string{"triage", "strong"} {
			t.Run("bob's follow-up with model "+model+" is the proxy's previous_response_not_found", func(t *testing.T) {
				before := p.upstreamCalls()
				got := p.askAs(t, "bob", model, "F and the next step?", id, false)
				refused++
				code, msg := errorBody(t, got.body)
				var e struct {
					Error struct{ Param string } `json:"error"`
				}
				json.Unmarshal(got.body, &e)
				if got.status != http.StatusNotFound || code != "previous_response_not_found" || e.Error.Param != "previous_response_id" || msg != "Previous response with id '"+id+"' not found." || got.decision != "none" {
					t.Errorf("%d %q %s; want the proxy's 404 for previous_response_id", got.status, got.decision, got.body)
				}
				if n := p.upstreamCalls() - before; n != 0 {
					t.Errorf("the upstreams got %d calls", n)
				}
			})
		}
	}
	own := func(t *testing.T, id string) respResult {
		t.Helper()
		if status, body, model := p.storedAs(t, "alice", http.MethodGet, "/v1/responses/"+id); status != 200 || model != "strong-model" {
			t.Errorf("alice's GET: %d %s from %q; want 200 from the strong tier", status, body, model)
		}
		next := p.askAs(t, "alice", "triage", "F and the next step?", id, false)
		if next.status != 200 || next.decision != "escalate+pinned" || p.tierOf(next.id) != "strong" {
			t.Errorf("alice's follow-up: %d %q %s; want escalate+pinned", next.status, next.decision, next.body)
		}
		return next
	}
	others(t, first.id)
	var second respResult
	t.Run("alice's own GET and follow-up still work", func(t *testing.T) { second = own(t, first.id) })
	t.Run("the refused follow-ups are counted as the proxy's own refusals", func(t *testing.T) {
		if got := testutil.ToFloat64(p.h.m.requests.WithLabelValues("none", "404")); got != float64(refused) {
			t.Errorf("triage_proxy_requests_total{decision=\"none\",code=\"404\"} = %v, want %d", got, refused)
		}
	})
	p.restart(t)
	refused = 0
	t.Run("after a restart on the same db", func(t *testing.T) {
		others(t, second.id)
		own(t, second.id)
		if status, body, _ := p.storedAs(t, "alice", http.MethodDelete, "/v1/responses/"+second.id); status != 200 || !strings.Contains(body, `"deleted":true`) {
			t.Errorf("alice's DELETE: %d %s", status, body)
		}
	})
}
