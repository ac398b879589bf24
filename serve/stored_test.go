package serve

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/triage-router/triage/serve/proxy"
)

// newSlashIDsServer is a test server whose two tiers are one slashIDs.
func newSlashIDsServer(t *testing.T) (*slashIDs, *testServer) {
	t.Helper()
	up := &slashIDs{}
	srv := httptest.NewServer(up)
	t.Cleanup(srv.Close)
	return up, newTestServer(t, func(o *Options) {
		o.Config.Proxy.Tiers = proxy.Tiers{Fast: proxy.Tier{BaseURL: srv.URL, Model: "f"}, Strong: proxy.Tier{BaseURL: srv.URL, Model: "s"}}
	})
}

// slashIDs is a tier whose response ids hold "/", "+" and "=", as a
// LiteLLM proxy's do (resp_ and standard base64), but for the input
// "plain". It answers a request about a stored response with the path it
// got, escaped as sent.
type slashIDs struct {
	mu    sync.Mutex
	paths []string
}

const slashID = "resp_bGl0/ZWxs+bQ=="

func (u *slashIDs) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if r.Method == http.MethodPost && r.URL.Path == "/responses" {
		id := slashID
		if b, _ := io.ReadAll(r.Body); strings.Contains(string(b), `"plain"`) {
			id = "resp_plain"
		}
		fmt.Fprintf(w, `{"id":%q,"object":"response","status":"completed","output":[{"type":"message","id":"msg_1","status":"completed","role":"assistant","content":[{"type":"output_text","text":"hi","annotations":[]}]}],"usage":{"input_tokens":1,"output_tokens":1,"total_tokens":2}}`, id)
		return
	}
	u.mu.Lock()
	u.paths = append(u.paths, r.Method+" "+r.URL.EscapedPath())
	u.mu.Unlock()
	fmt.Fprintf(w, `{"path":%q}`, r.URL.EscapedPath())
}

func (u *slashIDs) seen() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.paths...)
}

// TestStoredResponseIDsWithASlash: a stored response whose id holds "/"
// is reached with the id percent-encoded (%2F), on each of its routes,
// and the tier is called with it encoded the same way. The server routed
// on the decoded path: the id split in two, an unknown route's 404, and
// a POST of "{id}%2Fcancel" cancelled the id before the slash.
func TestStoredResponseIDsWithASlash(t *testing.T) {
	up, ts := newSlashIDsServer(t)
	for _, input := range []string{"hi", "plain"} {
		if w := ts.do(t, "POST", "/v1/responses", `{"model":"fast","input":"`+input+`"}`, "Content-Type", "application/json"); w.Code != 200 {
			t.Fatalf("POST /v1/responses: %d %s", w.Code, w.Body)
		}
	}
	const escaped = "resp_bGl0%2FZWxs+bQ=="
	for _, tc := range []struct{ method, path, upstream string }{
		{"GET", "/v1/responses/" + escaped, "GET /responses/" + escaped},
		{"GET", "/v1/responses/" + escaped + "/input_items", "GET /responses/" + escaped + "/input_items"},
		{"POST", "/v1/responses/" + escaped + "/cancel", "POST /responses/" + escaped + "/cancel"},
		{"DELETE", "/v1/responses/" + escaped, "DELETE /responses/" + escaped},
	} {
		t.Run(tc.method+" "+tc.path+" reaches the tier with the id encoded", func(t *testing.T) {
			before := len(up.seen())
			w := ts.do(t, tc.method, tc.path, "")
			seen := up.seen()
			if w.Code != 200 || len(seen) != before+1 || seen[before] != tc.upstream {
				t.Errorf("%d %s, the tier saw %q; want 200 and %q", w.Code, w.Body, seen[before:], tc.upstream)
			}
		})
	}
	t.Run("an encoded slash before cancel is part of the id, not the cancel route", func(t *testing.T) {
		before := len(up.seen())
		w := ts.do(t, "POST", "/v1/responses/resp_plain%2Fcancel", "")
		if w.Code == 200 || len(up.seen()) != before {
			t.Errorf("%d %s, the tier saw %q; want a refusal that reaches no tier", w.Code, w.Body, up.seen()[before:])
		}
	})
	t.Run("an id sent with its slash raw is a 404 that says to encode it", func(t *testing.T) {
		w := ts.do(t, "GET", "/v1/responses/"+slashID, "")
		if e := errorOf(t, w); w.Code != 404 || !strings.Contains(e.Message, "%2F") {
			t.Errorf("%d %s; want a 404 saying to send the slash as %%2F", w.Code, w.Body)
		}
	})
}

// TestStoredResponseMethodsAreCountedApart: GET and DELETE of a stored
// response are one route pattern, counted in triage_http_requests_total
// (and its latency) by method: one series for both hid the deletions
// among the retrievals.
func TestStoredResponseMethodsAreCountedApart(t *testing.T) {
	_, ts := newSlashIDsServer(t)
	if w := ts.do(t, "POST", "/v1/responses", `{"model":"fast","input":"plain"}`, "Content-Type", "application/json"); w.Code != 200 {
		t.Fatalf("POST /v1/responses: %d %s", w.Code, w.Body)
	}
	for _, m := range []string{"GET", "GET", "DELETE"} {
		if w := ts.do(t, m, "/v1/responses/resp_plain", ""); w.Code != 200 {
			t.Fatalf("%s: %d %s", m, w.Code, w.Body)
		}
	}
	mfs, err := ts.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			if l["route"] != "/v1/responses/:id" {
				continue
			}
			switch mf.GetName() {
			case "triage_http_requests_total":
				got[l["method"]+" "+l["code"]] += m.GetCounter().GetValue()
			case "triage_http_request_duration_seconds":
				got[l["method"]+" observed"] += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	want := map[string]float64{"GET 200": 2, "DELETE 200": 1, "GET observed": 2, "DELETE observed": 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("route /v1/responses/:id by method: %v, want %v", got, want)
	}
}

// TestPercentEncodedLettersRouteAsDecoded: a path's percent-encoded
// letters, digits and "-._~" are those characters (RFC 3986 6.2.2.2), on
// every route of the client listener. Routed on the path as sent (for a
// stored response's %2F), "/v1/%6Dodels/fast" was a 404 that named the
// route it missed, "no route GET /v1/models/fast", where the decoded path
// had reached it. An encoded "/" stays inside its segment.
func TestPercentEncodedLettersRouteAsDecoded(t *testing.T) {
	_, ts := newSlashIDsServer(t)
	if w := ts.do(t, "POST", "/v1/responses", `{"model":"fast","input":"hi"}`, "Content-Type", "application/json"); w.Code != 200 {
		t.Fatalf("POST /v1/responses: %d %s", w.Code, w.Body)
	}
	for _, tc := range []struct {
		method, path, body string
		want               int
	}{
		{"GET", "/%68ealthz", "", 200},
		{"GET", "/v1/%6Dodel", "", 200},
		{"GET", "/v1/%6dodels/fast", "", 200},
		{"GET", "/v1/models/%66ast", "", 200},
		{"POST", "/v1/%72oute", `{"prompt":"hi"}`, 200},
		{"POST", "/v1/%72esponses", `{"model":"fast","input":"plain"}`, 200},
		{"GET", "/v1/%72esponses/resp_bGl0%2FZWxs+bQ%3D%3D", "", 200},
		{"GET", "/v1/models%2Ffast", "", 404},
	} {
		t.Run(tc.method+" "+tc.path+" answers as its decoded letters", func(t *testing.T) {
			w := ts.do(t, tc.method, tc.path, tc.body, "Content-Type", "application/json")
			if w.Code != tc.want {
				t.Errorf("%d %s; want %d", w.Code, w.Body, tc.want)
			}
		})
	}
}

func TestDecodeUnreserved(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/v1/models", "/v1/models"},
		{"/v1/%6Dodels/%7e%2D%2e%5F", "/v1/models/~-._"},
		{"/v1/responses/a%2Fb%2fc%3D%25", "/v1/responses/a%2Fb%2fc%3D%25"},
		{"/%2e%2e/%6", "/../%6"},
		{"/%zz%", "/%zz%"},
	} {
		if got := decodeUnreserved(tc.in); got != tc.want {
			t.Errorf("decodeUnreserved(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestNoRouteNamesThePathAsRouted: the client listener routes on the path
// as sent, so its 404 and 405 name that path. They named the decoded one:
// "/v1/chat%2Fcompletions" was refused as "no route POST
// /v1/chat/completions", a route that exists.
func TestNoRouteNamesThePathAsRouted(t *testing.T) {
	ts := newTestServer(t, nil)
	for _, tc := range []struct{ method, path, want string }{
		{"POST", "/v1/route%2Fbatch", "no route POST /v1/route%2Fbatch;"},
		{"GET", "/v1/models%2Ffast", "no route GET /v1/models%2Ffast;"},
		{"PUT", "/v1/route", "PUT is not allowed on /v1/route"},
	} {
		t.Run(tc.method+" "+tc.path+" is refused by its path as sent", func(t *testing.T) {
			w := ts.do(t, tc.method, tc.path, `{}`)
			var e struct{ Error struct{ Message string } }
			json.Unmarshal(w.Body.Bytes(), &e)
			if !strings.Contains(e.Error.Message, tc.want) {
				t.Errorf("%d %s; want a message with %q", w.Code, w.Body, tc.want)
			}
		})
	}
}

// TestTrailingSlashRedirectKeepsAnEncodedSlash: a path with a trailing
// slash that is a route without it is redirected there, and an encoded
// "/" in it stays encoded. gin built that redirect from the decoded path:
// GET /v1/responses/a%2Fb/ went to /v1/responses/a/b (an unknown route),
// and POST /v1/responses/x%2Fcancel/ to /v1/responses/x/cancel, the
// cancel of response x, which a client that follows a 307 then sent.
func TestTrailingSlashRedirectKeepsAnEncodedSlash(t *testing.T) {
	ts := newTestServer(t, func(o *Options) {
		o.Config.Proxy.Tiers = proxy.Tiers{Fast: proxy.Tier{BaseURL: "http://127.0.0.1:1/v1", Model: "f"}, Strong: proxy.Tier{BaseURL: "http://127.0.0.1:1/v1", Model: "s"}}
	})
	for _, tc := range []struct {
		method, path string
		code         int
		location     string
	}{
		{"GET", "/v1/responses/a%2Fb/", 301, "/v1/responses/a%2Fb"},
		{"DELETE", "/v1/responses/a%2Fb/?x=1", 307, "/v1/responses/a%2Fb?x=1"},
		{"GET", "/v1/responses/abc/", 301, "/v1/responses/abc"},
		{"GET", "/healthz/", 301, "/healthz"},
		{"POST", "/v1/route/?x=1", 307, "/v1/route?x=1"},
		// No route without the slash: no redirect. gin sent this one to
		// /v1/responses/abc, a route of GET and DELETE only.
		{"POST", "/v1/responses/abc/", 404, ""},
		{"POST", "/v1/responses/x%2Fcancel/", 404, ""},
		{"PUT", "/v1/responses/a%2Fb/", 404, ""},
		// The catch-all route takes a trailing slash as it is.
		{"GET", "/v1/models/fast%2Fx/", 404, ""},
		{"GET", "/v1/models/fast/", 200, ""},
	} {
		t.Run(fmt.Sprintf("%s %s answers %d %s", tc.method, tc.path, tc.code, tc.location), func(t *testing.T) {
			w := ts.do(t, tc.method, tc.path, "")
			if w.Code != tc.code || w.Header().Get("Location") != tc.location {
				t.Errorf("%d to %q, want %d to %q", w.Code, w.Header().Get("Location"), tc.code, tc.location)
			}
		})
	}
}
