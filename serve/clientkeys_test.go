package serve

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/serve/proxy"
)

func TestClientKeys(t *testing.T) {
	env := map[string]string{"WEB_KEY": "sk-web-123", ClientKeysEnv: "batch=sk-batch-456"}
	ts := newTestServer(t, func(o *Options) {
		o.Config.ClientKeys = []ClientKey{{Name: "web", KeyEnv: "WEB_KEY", Meta: datasets.Meta{"tenant": "acme", "app": "web"}}}
		o.Getenv = func(k string) string { return env[k] }
	})
	route := `{"prompt":"hello","meta":{"tenant":"other","subject":"math"}}`
	for _, tt := range []struct {
		name, header string
		status       int
	}{
		{"a request without a key is 401", "", 401},
		{"a wrong key is 401", "Bearer sk-web-12", 401},
		{"a key in the config is let in", "Bearer sk-web-123", 200},
		{"a key from $TRIAGE_CLIENT_KEYS is let in", "Bearer sk-batch-456", 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, path := range []string{"/v1/route", "/v1/feedback", "/v1/model"} {
				method, body := "POST", route
				switch path {
				case "/v1/feedback":
					body = `{"request_id":"nope","model":"m","score":1}`
				case "/v1/model":
					method, body = "GET", ""
				}
				w := ts.do(t, method, path, body, "Authorization", tt.header)
				if tt.status == 401 {
					if w.Code != 401 || errorOf(t, w).Code != CodeInvalidAPIKey || w.Header().Get("WWW-Authenticate") == "" {
						t.Errorf("%s: status %d %s, want 401 invalid_api_key", path, w.Code, w.Body)
					}
				} else if w.Code == 401 {
					t.Errorf("%s: status 401 with a right key: %s", path, w.Body)
				}
			}
		})
	}
	if w := ts.do(t, "GET", "/healthz", ""); w.Code != 200 {
		t.Errorf("/healthz needs a key: %d", w.Code)
	}
	t.Run("a key's meta is routed on and logged over the request's", func(t *testing.T) {
		recs := ts.export(t)
		var withMeta int
		for _, r := range recs {
			if r.Meta["tenant"] == "acme" && r.Meta["app"] == "web" && r.Meta["subject"] == "math" {
				withMeta++
			} else if r.Meta["tenant"] != "other" {
				t.Errorf("record %s meta %v", r.ID, r.Meta)
			}
		}
		if withMeta != 1 {
			t.Errorf("%d records with the web key's meta, want 1 (of %d)", withMeta, len(recs))
		}
	})
	t.Run("an empty prompt with a key's meta is logged as an empty prompt", func(t *testing.T) {
		if w := ts.do(t, "POST", "/v1/route", `{"prompt":"","id":"empty"}`, "Authorization", "Bearer sk-web-123"); w.Code != 200 {
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
		for _, r := range ts.export(t) {
			if r.ID == "empty" && (r.Prompt != "" || r.Messages != nil || r.Meta["app"] != "web") {
				t.Errorf("exported %+v, want an empty prompt, no messages and the key's meta", r)
			}
		}
	})
}

func TestExposure(t *testing.T) {
	for _, tt := range []struct {
		name    string
		addr    string
		proxyOn bool
		keys    int
		allow   bool
		refused bool
	}{
		{"a proxy without keys on every interface is refused", "0.0.0.0:8080", true, 0, false, true},
		{"a proxy without keys on an empty host is refused", ":8080", true, 0, false, true},
		{"a proxy without keys on a LAN address is refused", "10.1.2.3:8080", true, 0, false, true},
		{"a proxy without keys on 127.0.0.1 is fine", "127.0.0.1:8080", true, 0, false, false},
		{"a proxy without keys on localhost is fine", "localhost:0", true, 0, false, false},
		{"a proxy without keys on ::1 is fine", "[::1]:8080", true, 0, false, false},
		{"a proxy with keys on every interface is fine", "0.0.0.0:8080", true, 1, false, false},
		{"allow_unauthenticated lets it listen anywhere", "0.0.0.0:8080", true, 0, true, false},
		{"a server without a proxy may listen anywhere", "0.0.0.0:8080", false, 0, false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := checkExposure(tt.addr, tt.proxyOn, tt.keys, tt.allow)
			if got := errors.Is(err, errOpenProxy); got != tt.refused {
				t.Errorf("err = %v, refused %v, want %v", err, got, tt.refused)
			}
		})
	}
	t.Run("New refuses an open proxy on a public address", func(t *testing.T) {
		dir := t.TempDir()
		model := filepath.Join(dir, "router.json")
		writeArtifact(t, model, "v1", 0)
		store, err := datasets.OpenBoltStore(filepath.Join(dir, "feedback.db"), datasets.StoreOptions{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		cfg := DefaultConfig()
		cfg.Addr = "0.0.0.0:8080"
		cfg.Proxy.Tiers = proxy.Tiers{Fast: proxy.Tier{BaseURL: "http://127.0.0.1:9/v1", Model: "f"}, Strong: proxy.Tier{BaseURL: "http://127.0.0.1:9/v1", Model: "s"}}
		_, err = New(Options{Config: cfg, ModelPath: model, Store: store, Registry: prometheus.NewRegistry(), Getenv: func(string) string { return "" }})
		if !errors.Is(err, errOpenProxy) || !strings.Contains(err.Error(), "allow_unauthenticated") {
			t.Errorf("err = %v, want the open proxy refused with a hint", err)
		}
	})
}

func TestClientKeyConfig(t *testing.T) {
	for _, tt := range []struct {
		name, yaml, want string
	}{
		{"a key without a name is refused", "client_keys: [{key: k}]", "client_keys[0].name is empty"},
		{"a key with neither key nor key_env is refused", "client_keys: [{name: a}]", "exactly one of key_env"},
		{"a key with both is refused", "client_keys: [{name: a, key: k, key_env: E}]", "exactly one of key_env"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseConfig([]byte(tt.yaml), DefaultConfig()); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
	for _, tt := range []struct {
		name string
		keys []ClientKey
		env  map[string]string
		want string
	}{
		{"an unset key_env is an error naming it", []ClientKey{{Name: "a", KeyEnv: "NOPE"}}, nil, "NOPE, which is not set"},
		{"a name used twice is an error", []ClientKey{{Name: "a", Key: "1"}}, map[string]string{ClientKeysEnv: "a=2"}, `"a" is named twice`},
		{"a malformed $TRIAGE_CLIENT_KEYS is an error", nil, map[string]string{ClientKeysEnv: "a=1,b"}, "entry 2 is not name=key"},
		{"a name with a control character is an error", []ClientKey{{Name: "web\tapp", Key: "1"}}, nil, "without control characters"},
		{"a name longer than the db holds is an error", []ClientKey{{Name: strings.Repeat("n", datasets.MaxIDBytes+1), Key: "1"}}, nil, "at most 256 bytes"},
		{"a name from $TRIAGE_CLIENT_KEYS is checked too", nil, map[string]string{ClientKeysEnv: "a\x01=1"}, "without control characters"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := clientKeys(tt.keys, func(k string) string { return tt.env[k] })
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

// With client keys, /v1/ routes need one; GET /v1/model's admin view
// needs the admin token, and one Authorization header carries one of
// them: the admin token is let in there, and only there.
func TestAdminTokenWithClientKeys(t *testing.T) {
	ts := newTestServer(t, func(o *Options) {
		withAdmin(o)
		o.Config.ClientKeys = []ClientKey{{Name: "web", Key: "sk-web-123"}}
	})
	for _, scheme := range []string{"Bearer ", "bearer "} {
		w := ts.do(t, "GET", "/v1/model", "", "Authorization", scheme+token)
		if w.Code != 200 || !strings.Contains(w.Body.String(), `"metrics"`) {
			t.Errorf("GET /v1/model with %q+the admin token: %d %s, want the admin view", scheme, w.Code, w.Body)
		}
		if w := ts.do(t, "GET", "/admin/feedback/export", "", "Authorization", scheme+token); w.Code != 200 {
			t.Errorf("GET /admin/feedback/export with %q+the admin token: %d %s, want 200", scheme, w.Code, w.Body)
		}
	}
	if w := ts.do(t, "GET", "/v1/model", "", "Authorization", "Bearer sk-web-123"); w.Code != 200 || strings.Contains(w.Body.String(), `"metrics"`) {
		t.Errorf("GET /v1/model with a client key: %d %s, want the public view", w.Code, w.Body)
	}
	if w := ts.do(t, "POST", "/v1/route", `{"prompt":"x"}`, "Authorization", "Bearer "+token); w.Code != 401 {
		t.Errorf("POST /v1/route with the admin token: %d %s, want 401 (routes take client keys)", w.Code, w.Body)
	}
}

// TestStoredResponseRoutesNeedAClientKey: a stored response's routes are
// behind the client keys like the POST that made it, and an id the proxy
// did not relay is the proxy's own 404, not an unknown route's.
func TestStoredResponseRoutesNeedAClientKey(t *testing.T) {
	ts := newTestServer(t, func(o *Options) {
		o.Config.Proxy.Tiers = proxy.Tiers{Fast: proxy.Tier{BaseURL: "http://127.0.0.1:9/v1", Model: "f"}, Strong: proxy.Tier{BaseURL: "http://127.0.0.1:9/v1", Model: "s"}}
		o.Config.ClientKeys = []ClientKey{{Name: "web", Key: "sk-web-123"}}
	})
	for _, r := range []struct{ method, path string }{
		{"GET", "/v1/responses/resp_x"}, {"DELETE", "/v1/responses/resp_x"},
		{"POST", "/v1/responses/resp_x/cancel"}, {"GET", "/v1/responses/resp_x/input_items"},
	} {
		if w := ts.do(t, r.method, r.path, ""); w.Code != 401 || errorOf(t, w).Code != CodeInvalidAPIKey {
			t.Errorf("%s %s without a key: %d %s, want 401", r.method, r.path, w.Code, w.Body)
		}
		w := ts.do(t, r.method, r.path, "", "Authorization", "Bearer sk-web-123")
		if e := errorOf(t, w); w.Code != 404 || e.Code != "not_found" || !strings.Contains(e.Message, `No response found with id 'resp_x'.`) {
			t.Errorf("%s %s of an unknown id: %d %s, want the proxy's 404", r.method, r.path, w.Code, w.Body)
		}
	}
}

// ownStore is an upstream that keeps its Responses API state to itself,
// as a separate server does: it answers for the ids it gave out, and a
// request continuing another is its 404. calls counts every request.
type ownStore struct {
	name  string
	mu    sync.Mutex
	ids   map[string]bool
	calls int
}

func newOwnStore(tb testing.TB, name string) (*ownStore, string) {
	o := &ownStore{name: name, ids: map[string]bool{}}
	up := httptest.NewServer(o)
	tb.Cleanup(up.Close)
	return o, up.URL
}

func (o *ownStore) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls++
	w.Header().Set("Content-Type", "application/json")
	if rest, ok := strings.CutPrefix(r.URL.Path, "/responses/"); ok {
		id, _, _ := strings.Cut(rest, "/")
		if !o.ids[id] {
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"error":{"message":"no such response","type":"invalid_request_error","param":null,"code":"not_found"}}`)
			return
		}
		fmt.Fprintf(w, `{"id":%q,"object":"response","status":"completed","output":[]}`, id)
		return
	}
	var req struct {
		Prev string `json:"previous_response_id"`
	}
	b, _ := io.ReadAll(r.Body)
	json.Unmarshal(b, &req)
	if req.Prev != "" && !o.ids[req.Prev] {
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"error":{"message":"not found","type":"invalid_request_error","param":"previous_response_id","code":"previous_response_not_found"}}`)
		return
	}
	id := fmt.Sprintf("resp_%s_%d", o.name, len(o.ids))
	o.ids[id] = true
	fmt.Fprintf(w, `{"id":%q,"object":"response","status":"completed","output":[{"type":"message","id":"msg_1","status":"completed","role":"assistant","content":[{"type":"output_text","text":"hi","annotations":[]}]}],"usage":{"input_tokens":1,"output_tokens":1,"total_tokens":2}}`, id)
}

// TestStoredResponsesStayWithTheirClientKey: with two client keys, a
// response made with one is the other's 404 on GET, DELETE, cancel and
// input_items (the body of an unknown id) and as previous_response_id,
// and neither reaches an upstream; the key that made it still reads,
// continues and deletes it. A server without client keys serves every
// client as before. The tiers are called with the proxy's key, so they
// cannot tell clients apart: key B read, continued and deleted key A's
// response.
func TestStoredResponsesStayWithTheirClientKey(t *testing.T) {
	for _, tc := range []struct {
		name       string
		keys       []ClientKey
		alice, bob string // Authorization headers
		bobRefused bool
	}{
		{"with two client keys, another key's requests are refused", []ClientKey{{Name: "alice", Key: "sk-a"}, {Name: "bob", Key: "sk-b"}}, "Bearer sk-a", "Bearer sk-b", true},
		{"without client keys, every client is served as before", nil, "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fast, fastURL := newOwnStore(t, "fast")
			strong, strongURL := newOwnStore(t, "strong")
			ts := newTestServer(t, func(o *Options) {
				o.Config.Proxy.Tiers = proxy.Tiers{Fast: proxy.Tier{BaseURL: fastURL, Model: "f"}, Strong: proxy.Tier{BaseURL: strongURL, Model: "s"}}
				o.Config.ClientKeys = tc.keys
			})
			calls := func() int {
				n := 0
				for _, o := range []*ownStore{fast, strong} {
					o.mu.Lock()
					n += o.calls
					o.mu.Unlock()
				}
				return n
			}
			post := func(auth, model, prev string) (int, string, proxy.ErrorDetail, string) {
				t.Helper()
				body := fmt.Sprintf(`{"model":%q,"input":"explain the proof","previous_response_id":%q}`, model, prev)
				if prev == "" {
					body = fmt.Sprintf(`{"model":%q,"input":"explain the proof"}`, model)
				}
				w := ts.do(t, "POST", "/v1/responses", body, "Authorization", auth, "Content-Type", "application/json")
				var out struct {
					ID    string            `json:"id"`
					Error proxy.ErrorDetail `json:"error"`
				}
				json.Unmarshal(w.Body.Bytes(), &out)
				return w.Code, out.ID, out.Error, w.Header().Get(proxy.HeaderDecision)
			}
			status, id, _, _ := post(tc.alice, "strong", "")
			if status != 200 || !strings.HasPrefix(id, "resp_strong_") {
				t.Fatalf("alice's first turn: %d id %q; want the strong tier's answer", status, id)
			}
			for _, r := range []struct{ method, path string }{
				{"GET", "/v1/responses/%s"}, {"GET", "/v1/responses/%s/input_items"}, {"POST", "/v1/responses/%s/cancel"}, {"DELETE", "/v1/responses/%s"},
			} {
				before := calls()
				unknown := ts.do(t, r.method, fmt.Sprintf(r.path, "resp_never_relayed"), "", "Authorization", tc.bob)
				w := ts.do(t, r.method, fmt.Sprintf(r.path, id), "", "Authorization", tc.bob)
				if !tc.bobRefused {
					if w.Code != 200 || w.Header().Get(proxy.HeaderModel) != "s" {
						t.Errorf("bob's %s %s without client keys: %d %s; want it passed to the tier", r.method, r.path, w.Code, w.Body)
					}
					continue
				}
				if want := strings.ReplaceAll(unknown.Body.String(), "resp_never_relayed", id); w.Code != 404 || w.Body.String() != want {
					t.Errorf("bob's %s %s: %d %s; want 404 %s", r.method, r.path, w.Code, w.Body, want)
				}
				if n := calls() - before; n != 0 {
					t.Errorf("bob's %s %s reached an upstream %d times", r.method, r.path, n)
				}
			}
			before := calls()
			status, _, e, decision := post(tc.bob, "triage", id)
			if tc.bobRefused {
				if status != 404 || e.Code != "previous_response_not_found" || e.Param == nil || *e.Param != "previous_response_id" || decision != "none" {
					t.Errorf("bob's follow-up: %d %+v %q; want the proxy's 404 for previous_response_id", status, e, decision)
				}
				if n := calls() - before; n != 0 {
					t.Errorf("bob's follow-up reached an upstream %d times", n)
				}
			} else if status != 200 || decision != "escalate+pinned" {
				t.Errorf("a follow-up without client keys: %d %q; want escalate+pinned", status, decision)
			}
			status, next, _, decision := post(tc.alice, "triage", id)
			if status != 200 || decision != "escalate+pinned" || !strings.HasPrefix(next, "resp_strong_") {
				t.Errorf("alice's follow-up: %d %q id %q; want escalate+pinned", status, decision, next)
			}
			for _, method := range []string{"GET", "DELETE"} {
				if w := ts.do(t, method, "/v1/responses/"+id, "", "Authorization", tc.alice); w.Code != 200 {
					t.Errorf("alice's %s: %d %s", method, w.Code, w.Body)
				}
			}
		})
	}
}

// slowStream answers a Responses API request with a stored response's
// id, and GET /responses/{id}?stream=true with a background response's
// events spread over longer than the server's write_timeout.
type slowStream struct{ gap time.Duration }

func (s slowStream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"resp_bg_1","object":"response","status":"queued","background":true,"output":[]}`)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	for i := range 6 {
		fmt.Fprintf(w, "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"%d\",\"sequence_number\":%d}\n\n", i, i)
		w.(http.Flusher).Flush()
		time.Sleep(s.gap)
	}
	io.WriteString(w, "event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":6}\n\n")
}

// TestStoredResponseStreamOutlastsTheWriteTimeout: polling a background
// response with ?stream=true relays its events for as long as the
// generation takes. The server's write_timeout (a deadline from the
// request's start for its other routes) cut it once it had run that
// long; like an answer's stream, each write is bounded instead.
func TestStoredResponseStreamOutlastsTheWriteTimeout(t *testing.T) {
	up := httptest.NewServer(slowStream{gap: 100 * time.Millisecond})
	t.Cleanup(up.Close)
	ts := newTestServer(t, func(o *Options) {
		o.Config.Proxy.Tiers = proxy.Tiers{Fast: proxy.Tier{BaseURL: up.URL, Model: "f"}, Strong: proxy.Tier{BaseURL: up.URL, Model: "s"}}
		o.Config.Limits.WriteTimeout = 250 * time.Millisecond
	})
	addr := serveReal(t, ts.Server)
	resp, err := http.Post("http://"+addr+"/v1/responses", "application/json", strings.NewReader(`{"model":"strong","input":"a long essay","background":true}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("the background request: %d", resp.StatusCode)
	}
	resp, err = http.Get("http://" + addr + "/v1/responses/resp_bg_1?stream=true")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 || !strings.Contains(string(body), "response.completed") {
		t.Fatalf("the stream: %d, %v, %d bytes ending %q; want every event through response.completed", resp.StatusCode, err, len(body), body[max(len(body)-80, 0):])
	}
}
