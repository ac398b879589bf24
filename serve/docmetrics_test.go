package serve

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/triage-router/triage/serve/proxy"
)

var (
	docMetric = regexp.MustCompile(`\btriage_[a-z0-9_]*[a-z0-9]\b`)
	descName  = regexp.MustCompile(`fqName: "([^"]+)"`)
)

// Dashboards and alert rules are written from the pages: a metric renamed
// in code but still named in README.md or docs/ gives a panel that stays
// empty and an alert that never fires, with no error anywhere. So every
// triage_* name the pages give is one the server (with the proxy on)
// registers; a histogram may be named by a series (_bucket, _sum,
// _count), and a name ending in "_" is a family ("triage_drift_*").
func TestDocsNameOnlyServedMetrics(t *testing.T) {
	ts := newTestServer(t, func(o *Options) {
		o.Config.Proxy.Tiers = proxy.Tiers{Fast: proxy.Tier{BaseURL: "http://127.0.0.1:9/v1", Model: "f"}, Strong: proxy.Tier{BaseURL: "http://127.0.0.1:9/v1", Model: "s"}}
	})
	served := map[string]bool{}
	descs := make(chan *prometheus.Desc)
	go func() {
		ts.reg.Describe(descs)
		close(descs)
	}()
	for d := range descs {
		if m := descName.FindStringSubmatch(d.String()); m != nil {
			served[m[1]] = true
		}
	}
	pages, err := filepath.Glob(filepath.Join("..", "docs", "*.md"))
	if err != nil || len(pages) == 0 {
		t.Fatalf("no docs/*.md pages found from serve (%v)", err)
	}
	pages = append(pages, filepath.Join("..", "README.md"))
	named := map[string]bool{}
	for _, page := range pages {
		b, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		for _, m := range docMetric.FindAllStringIndex(text, -1) {
			if m[1] < len(text) && text[m[1]] == '_' {
				continue // a family, "triage_drift_*"
			}
			name := text[m[0]:m[1]]
			named[name] = true
			base := name
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				if b, ok := strings.CutSuffix(name, s); ok && served[b] {
					base = b
				}
			}
			if !served[base] {
				t.Errorf("%s names %s, which the server does not register", filepath.Base(page), name)
			}
		}
	}
	// The pages name some forty; far fewer means the pattern stopped
	// finding them, and the test would pass on nothing.
	if len(named) < 30 {
		t.Errorf("the pages name only %d metrics (%v); the scan no longer finds them", len(named), named)
	}
}
