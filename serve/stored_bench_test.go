package serve

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/triage-router/triage/serve/proxy"
)

// BenchmarkStoredResponseNotFound times the 404 a client key gets for a
// stored response another key made and for an id no one made, each
// GET /v1/responses/{id} in turn (so drift on a shared machine falls on
// both alike), and reports each one's median: the two must not tell
// "exists, not yours" from "does not exist". "loopback" is a client
// over 127.0.0.1, "in process" the handler alone, where a difference in
// the work done shows undiluted.
//
//	go test -run '^$' -bench BenchmarkStoredResponseNotFound -benchtime 20000x ./serve/
func BenchmarkStoredResponseNotFound(b *testing.B) {
	fast, fastURL := newOwnStore(b, "fast")
	_, strongURL := newOwnStore(b, "strong")
	ts := newTestServer(b, func(o *Options) {
		o.Config.Proxy.Tiers = proxy.Tiers{Fast: proxy.Tier{BaseURL: fastURL, Model: "f"}, Strong: proxy.Tier{BaseURL: strongURL, Model: "s"}}
		o.Config.ClientKeys = []ClientKey{{Name: "alice", Key: "sk-a"}, {Name: "bob", Key: "sk-b"}}
	})
	// Some entries in the db besides the one asked for, as a server has.
	var id string
	for range 200 {
		w := ts.do(b, "POST", "/v1/responses", `{"model":"fast","input":"hi"}`, "Authorization", "Bearer sk-a", "Content-Type", "application/json")
		var out struct{ ID string }
		if json.Unmarshal(w.Body.Bytes(), &out); w.Code != 200 || out.ID == "" {
			b.Fatalf("POST: %d %s", w.Code, w.Body)
		}
		id = out.ID
	}
	if err := ts.dlog.Flush(b.Context()); err != nil {
		b.Fatal(err)
	}
	// As long as the real id, so the two requests differ in nothing else.
	unknown := "resp_fast_" + strings.Repeat("9", len(id)-len("resp_fast_"))
	fast.mu.Lock()
	calls := fast.calls
	fast.mu.Unlock()

	srv := httptest.NewServer(ts.Handler())
	defer srv.Close()
	client := srv.Client()
	overHTTP := func(b *testing.B, id string) {
		req, _ := http.NewRequest("GET", srv.URL+"/v1/responses/"+id, nil)
		req.Header.Set("Authorization", "Bearer sk-b")
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 404 {
			b.Fatalf("GET %s as bob: %d", id, resp.StatusCode)
		}
	}
	inProcess := func(b *testing.B, id string) {
		if w := ts.do(b, "GET", "/v1/responses/"+id, "", "Authorization", "Bearer sk-b"); w.Code != 404 {
			b.Fatalf("GET %s as bob: %d %s", id, w.Code, w.Body)
		}
	}
	for _, tc := range []struct {
		name string
		get  func(*testing.B, string)
	}{{"loopback", overHTTP}, {"in process", inProcess}} {
		b.Run(tc.name, func(b *testing.B) {
			var other, none []time.Duration
			timed := func(id string) time.Duration {
				start := time.Now()
				tc.get(b, id)
				return time.Since(start)
			}
			for i := 0; b.Loop(); i++ {
				// Which goes first alternates, so neither always finds
				// the caches the other warmed.
				if i%2 == 0 {
					other = append(other, timed(id))
					none = append(none, timed(unknown))
				} else {
					none = append(none, timed(unknown))
					other = append(other, timed(id))
				}
			}
			mo, mn := median(other), median(none)
			b.ReportMetric(float64(mo.Nanoseconds()), "other-key-ns/median")
			b.ReportMetric(float64(mn.Nanoseconds()), "unknown-ns/median")
			b.ReportMetric(float64((mn - mo).Nanoseconds()), "unknown-minus-other-ns")
		})
	}
	fast.mu.Lock()
	defer fast.mu.Unlock()
	if fast.calls != calls {
		b.Errorf("the tier had %d calls after the 404s, want none", fast.calls-calls)
	}
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
