package proxy

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestLoserGrace covers loser_grace: how long an unstreamed race's
// losing call may run on after the winner's answer was sent.
func TestLoserGrace(t *testing.T) {
	grace := func(d time.Duration) func(*Config) { return func(c *Config) { c.LoserGrace = &d } }
	strongLoserCancels := func(r *rig) float64 { return testutil.ToFloat64(r.h.m.cancels.WithLabelValues("strong", "loser")) }

	t.Run("0 cancels the loser before the winner's answer is sent", func(t *testing.T) {
		// The log's strong answer to "S accept" takes a minute.
		r := newRig(t, rigOptions{config: grace(0)})
		got := r.do(t, context.Background(), r.url, chatBody("S accept", ""))
		if got.status != 200 || got.model != "fast-model" {
			t.Fatalf("status %d model %q, want the fast answer", got.status, got.model)
		}
		if n := strongLoserCancels(r); n != 1 {
			t.Errorf("strong loser cancels %v when the client had its answer, want 1", n)
		}
	})

	t.Run("the client has its answer while the loser runs on, then the loser is cancelled", func(t *testing.T) {
		const g = 300 * time.Millisecond
		r := newRig(t, rigOptions{config: grace(g)})
		// The grace ends when the test ends it, not g after the answer:
		// what is checked of the loser running on holds however late the
		// check runs.
		asked, over := make(chan time.Duration, 1), make(chan time.Time, 1)
		r.h.graceTimer = func(d time.Duration) (<-chan time.Time, func() bool) {
			asked <- d
			return over, func() bool { return true }
		}
		got := r.do(t, context.Background(), r.url, chatBody("S accept", ""))
		if got.status != 200 || got.model != "fast-model" || got.content != "fast and sure" {
			t.Fatalf("status %d model %q content %q, want the fast answer", got.status, got.model, got.content)
		}
		select {
		case d := <-asked:
			if d != g {
				t.Errorf("the loser was given %v, want loser_grace (%v)", d, g)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the loser was not given its grace")
		}
		// Nothing but the grace can have ended the strong call yet: its
		// answer takes a minute.
		if n, in := strongLoserCancels(r), r.strongSim.Stats().InFlight; n != 0 || in != 1 {
			t.Errorf("with the answer sent: strong loser cancels %v, strong calls in flight %d; want 0 and 1", n, in)
		}
		ended := time.Now()
		over <- ended
		waitFor(t, "the strong sim to see the cancel", func() bool { return r.strongSim.Stats().Cancelled == 1 })
		s := r.recordings(t)[0].Outcomes["strong-log-name"]
		// The server's latency metric ends at the answer, not at the
		// handler's end (recordings waited for it), which came after the
		// grace.
		rep := r.lastReport.Load()
		if rep == nil || rep.Answered.IsZero() || rep.Answered.After(ended) || r.lastEnd.Load().Before(ended) {
			t.Errorf("report %+v, grace ended %v, handler's end %v: want the answer's time, before the grace ended and the handler after", rep, ended, r.lastEnd.Load())
		}
		// The call began before the answer was sent and was cancelled
		// after the grace ended, so it ran at least that long.
		if ran := ended.Sub(rep.Answered); !s.Cancelled || s.LatencyMS == nil || *s.LatencyMS < float64(ran.Microseconds())/1000 {
			t.Errorf("strong outcome %+v, want cancelled after at least the grace (%v)", s, ran)
		}
		if n := strongLoserCancels(r); n != 1 {
			t.Errorf("strong loser cancels %v, want 1", n)
		}
	})

	t.Run("a loser that ends within the grace is recorded whole and keeps its connection", func(t *testing.T) {
		// Both tiers answer in 20 ms: either may win the race, and the
		// other ends a moment later. The grace never ends here, so how
		// late that is does not matter.
		r := newRig(t, rigOptions{fixedLatency: 20 * time.Millisecond, config: grace(time.Second)})
		r.h.graceTimer = func(time.Duration) (<-chan time.Time, func() bool) { return nil, func() bool { return true } }
		const n = 3
		for range n {
			if got := r.do(t, context.Background(), r.url, chatBody("S accept", "")); got.status != 200 || got.decision != "speculate" {
				t.Fatalf("status %d decision %q: %s", got.status, got.decision, got.body)
			}
		}
		recs := r.recordings(t)
		if len(recs) != n {
			t.Fatalf("%d recordings, want %d", len(recs), n)
		}
		for i, rec := range recs {
			for name, o := range rec.Outcomes {
				if o.Cancelled || o.LatencyMS == nil || o.CostUSD == nil {
					t.Errorf("request %d: %s outcome %+v, want a whole answer with its cost", i, name, o)
				}
			}
		}
		if f, s := r.fastSim.Stats().Cancelled, r.strongSim.Stats().Cancelled; f != 0 || s != 0 {
			t.Errorf("the sims saw %d fast and %d strong cancels, want none", f, s)
		}
		// One connection per tier, kept for every request; a cancelled
		// call would have closed its own and the next call dialled again.
		if c := r.conns.Load(); c != 2 {
			t.Errorf("the sims accepted %d connections for %d speculations, want 2 (one per tier)", c, n)
		}
	})

	t.Run("config", func(t *testing.T) {
		ok := Tier{BaseURL: "http://127.0.0.1:8000/v1", Model: "m"}
		for _, d := range []time.Duration{-time.Millisecond, 2 * time.Second} {
			c := Config{Tiers: Tiers{Fast: ok, Strong: ok}, LoserGrace: &d}
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "loser_grace") {
				t.Errorf("loser_grace %v: err = %v, want one naming loser_grace", d, err)
			}
		}
	})
}
