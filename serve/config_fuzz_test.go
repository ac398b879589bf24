package serve

import (
	"testing"
)

// FuzzParseConfig feeds changed config files to ParseConfig: whatever the
// bytes, it returns a config or an error and never panics, and a config it
// returns passes Validate (a server starts on what ParseConfig accepts).
func FuzzParseConfig(f *testing.F) {
	for _, seed := range []string{
		"",
		"addr: 127.0.0.1:8080\nthresholds: {speculate_above: 0.3, escalate_above: 0.7, accept_confidence: 0.8}\n",
		`limits:
  max_body_bytes: 1048576
  max_prompt_bytes: 262144
  max_batch: 256
  read_header_timeout: 5s
  idle_timeout: 2m
  max_connections: 0
db: {open_timeout: 1s, max_batch: 0}
decision_log: {queue_size: 16384, batch_size: 512}
retention: {max_age: 720h, max_bytes: 10737418240, interval: 5s}
feedback: {allow_other_models: true}
exploration: {epsilon: 0.02}
drift: {window: 50, feedback_window: 7}
shutdown_timeout: 10s
`,
		`tiers:
  fast:
    base_url: http://127.0.0.1:9001/v1
    model: synthetic/fast-small
    timeout: 30s
    price_in_per_1k: 0.0006
    price_out_per_1k: 0.0006
  strong:
    base_url: http://127.0.0.1:9002/v1
    model: synthetic/strong-large
    timeout: 60s
    price_in_per_1k: 0.01
    price_out_per_1k: 0.03
aliases:
  gpt-4o: triage
client_keys:
  - name: demo
    key: sk-triage-demo
    meta: {source: synthetic, tenant: acme}
record_responses: true
`,
		`tiers:
  - {name: small, base_url: http://127.0.0.1:9011/v1, model: small, price_in_per_1k: 0.0001, price_out_per_1k: 0.0001}
  - {name: mid, base_url: http://127.0.0.1:9012/v1, model: mid, price_in_per_1k: 0.001, price_out_per_1k: 0.001}
  - {name: large, base_url: http://127.0.0.1:9013/v1, model: large, price_in_per_1k: 0.01, price_out_per_1k: 0.01}
`,
		`{"addr": "127.0.0.1:0", "limits": {"max_batch": 8}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := ParseConfig(b, DefaultConfig())
		if err != nil {
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("ParseConfig accepted %q but its config fails Validate: %v", b, err)
		}
	})
}
