package proxy

import (
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/triage-router/triage/datasets"
)

// TestStoredResponseRoutes: GET and DELETE /v1/responses/{id}, its
// cancel and its input_items reach the tier that stored the response;
// an id the proxy never relayed is its own 404 in OpenAI's shape.
func TestStoredResponseRoutes(t *testing.T) {
	p := newPinRig(t, "")
	first := p.ask(t, "E explain", "", false)
	if p.tierOf(first.id) != "strong" {
		t.Fatalf("first answer %s", first.body)
	}
	for _, tc := range []struct {
		method, path, want string
	}{
		{http.MethodGet, "/v1/responses/" + first.id + "?include[]=message.output_text.logprobs", `"tier_seen":"include[]=message.output_text.logprobs"`},
		{http.MethodGet, "/v1/responses/" + first.id + "?stream=true&starting_after=3", "data: {\"type\":\"response.output_text.delta\",\"delta\":\"later\",\"sequence_number\":3}\n\nevent: response.completed"},
		{http.MethodGet, "/v1/responses/" + first.id + "/input_items", `"text":"strong"`},
		{http.MethodPost, "/v1/responses/" + first.id + "/cancel", `"status":"cancelled"`},
		{http.MethodDelete, "/v1/responses/" + first.id, `"deleted":true`},
	} {
		t.Run(tc.method+" "+strings.Replace(tc.path, first.id, "{id}", 1)+" reaches the tier that stored it", func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, p.url+tc.path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || !strings.Contains(string(b), tc.want) {
				t.Errorf("%d %s; want 200 with %s", resp.StatusCode, b, tc.want)
			}
			if got := resp.Header.Get(HeaderModel); got != "strong-model" {
				t.Errorf("X-Triage-Model %q, want strong-model", got)
			}
			if got := resp.Header.Get("X-Request-Id"); got != "req_get_strong" {
				t.Errorf("X-Request-Id %q, want the upstream's", got)
			}
		})
	}
	t.Run("an id the proxy never relayed is a 404 in OpenAI's shape", func(t *testing.T) {
		resp, err := http.Get(p.url + "/v1/responses/resp_unknown_7")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		code, msg := errorBody(t, b)
		if resp.StatusCode != http.StatusNotFound || code != "not_found" || !strings.Contains(msg, "resp_unknown_7") {
			t.Errorf("%d %s", resp.StatusCode, b)
		}
		// The id an SDK shows for the error (e.request_id), as on the
		// proxy's other errors.
		if got := resp.Header.Get("X-Request-Id"); len(got) != 32 {
			t.Errorf("X-Request-Id %q, want the proxy's own id", got)
		}
	})
}

// TestStoredResponseTimeout: a tier that does not answer a request about
// a stored response within its timeout is a 502, counted in the tier's
// metrics as a timeout, as an answer's call is; one that breaks its
// answer is a 502 counted as an error.
func TestStoredResponseTimeout(t *testing.T) {
	p := &pinRig{}
	p.rig = newRig(t, rigOptions{fastTimeout: 300 * time.Millisecond, upstream: func(tier string, next http.Handler) http.Handler {
		own := newOwnResponses(tier, next)
		if tier == "fast" {
			p.fast = own
		} else {
			p.strong = own
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Query().Has("short") {
				// A body cut short: the connection closes after one
				// of the 100 bytes promised.
				w.Header().Set("Content-Length", "100")
				w.Write([]byte("{"))
				return
			}
			if r.URL.Query().Has("hang") {
				// An upstream that never answers: the tier's timeout
				// ends the call.
				<-r.Context().Done()
				return
			}
			own.ServeHTTP(w, r)
		})
	}})
	first := p.ask(t, "F hello", "", false)
	if p.tierOf(first.id) != "fast" {
		t.Fatalf("first answer %s", first.body)
	}
	t.Run("a body cut short is a 502 the server logs with its request id", func(t *testing.T) {
		resp, err := http.Get(p.url + "/v1/responses/" + first.id + "?short=1")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusBadGateway {
			t.Errorf("%d %s; want a 502", resp.StatusCode, b)
		}
		id := resp.Header.Get("X-Request-Id")
		if logs := p.logs.String(); id == "" || !strings.Contains(logs, "request_id="+id) || !strings.Contains(logs, "unexpected EOF") {
			t.Errorf("X-Request-Id %q; logs:\n%s\nwant a line with its request id and the error", id, logs)
		}
	})
	resp, err := http.Get(p.url + "/v1/responses/" + first.id + "?hang=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	// The message names the timeout, as an answer's 502 does, so the
	// client's operator knows which setting cut it.
	if code, msg := errorBody(t, b); resp.StatusCode != http.StatusBadGateway || code != codeUpstream || !strings.Contains(msg, "fast tier (fast-model) timed out after 300ms") {
		t.Errorf("%d %s; want a 502 %s naming the tier's timeout", resp.StatusCode, b, codeUpstream)
	}
	for _, tc := range []struct {
		name string
		got  float64
		want float64
	}{
		{"timeout results", upstreamCalls(t, p.reg, "fast", "timeout"), 1},
		{"error results", upstreamCalls(t, p.reg, "fast", "error"), 1},
		{"timeout cancels", testutil.ToFloat64(p.h.m.cancels.WithLabelValues("fast", "timeout")), 1},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}

// upstreamCalls is the count of triage_proxy_upstream_duration_seconds
// for a tier and result.
func upstreamCalls(tb testing.TB, reg *prometheus.Registry, tier, result string) float64 {
	tb.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "triage_proxy_upstream_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["tier"] == tier && labels["result"] == result {
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return 0
}

// readCounter counts a ResponseStore's reads.
type readCounter struct {
	ResponseStore
	n atomic.Int64
}

func (c *readCounter) LookupResponse(id string, now time.Time) (datasets.StoredResponse, bool, error) {
	c.n.Add(1)
	return c.ResponseStore.LookupResponse(id, now)
}

// TestAnotherKeysResponseCostsWhatAnUnknownOneDoes: a request about a
// stored response another client key made does the work of one about an
// unknown id, a read of the store, though memory knows the id. Answered
// from memory, it was refused a few microseconds sooner (measured with
// serve's BenchmarkStoredResponseNotFound), so a client could tell
// "exists, not yours" from "does not exist" by the time.
func TestAnotherKeysResponseCostsWhatAnUnknownOneDoes(t *testing.T) {
	p := &pinRig{path: filepath.Join(t.TempDir(), "feedback.db")}
	p.openStore(t)
	reads := &readCounter{ResponseStore: p.store}
	p.rig = newRig(t, rigOptions{recorder: StoreRecorder{Store: p.store}, responses: reads,
		upstream: func(tier string, next http.Handler) http.Handler {
			own := newOwnResponses(tier, next)
			if tier == "fast" {
				p.fast = own
			} else {
				p.strong = own
			}
			return own
		}})
	first := p.askAs(t, "alice", "triage", "E explain the proof", "", false)
	if first.status != 200 || first.id == "" {
		t.Fatalf("alice's answer: %d %s", first.status, first.body)
	}
	for _, tc := range []struct {
		name, client, id string
		status           int
		reads            int64
	}{
		{"an unknown id reads the store", "bob", "resp_never_relayed", 404, 1},
		{"another key's id, which memory holds, reads it too", "bob", first.id, 404, 1},
		{"its own key's id is answered from memory", "alice", first.id, 200, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := reads.n.Load()
			status, body, _ := p.storedAs(t, tc.client, http.MethodGet, "/v1/responses/"+tc.id)
			if n := reads.n.Load() - before; status != tc.status || n != tc.reads {
				t.Errorf("%d %s after %d reads of the store; want %d after %d", status, body, n, tc.status, tc.reads)
			}
		})
	}
}
