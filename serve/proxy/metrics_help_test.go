package proxy

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestRequestsMetricHelpNamesEveryRoute: triage_proxy_requests_total
// counts every proxied route (docs/proxy.md, Metrics), but its HELP said
// "Proxied chat completions", so a dashboard's reader took Responses API
// and embeddings traffic for missing from it, and "passthrough" went
// unexplained.
func TestRequestsMetricHelpNamesEveryRoute(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	m.requests.WithLabelValues("passthrough", "200").Inc()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "triage_proxy_requests_total" {
			continue
		}
		help := mf.GetHelp()
		for _, want := range []string{"Responses API", "embeddings", "completions", "passthrough"} {
			if !strings.Contains(help, want) {
				t.Errorf("HELP %q does not name %q", help, want)
			}
		}
		return
	}
	t.Fatal("triage_proxy_requests_total not gathered")
}
