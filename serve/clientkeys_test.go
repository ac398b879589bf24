package serve

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

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
		if e := errorOf(t, w); w.Code != 404 || e.Code != "not_found" || !strings.Contains(e.Message, `response "resp_x" is not one this proxy relayed`) {
			t.Errorf("%s %s of an unknown id: %d %s, want the proxy's 404", r.method, r.path, w.Code, w.Body)
		}
	}
}
