package main

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

// An error answered at once must not count as a fast request: before,
// every request's latency went into the percentiles, so a path that
// failed quickly looked faster than one that worked.
func TestTallyKeepsOnlySuccessfulLatencies(t *testing.T) {
	tl := newTally()
	tl.add(response{status: 200, model: "fast", decision: "speculate"}, nil, 50*time.Millisecond)
	tl.add(response{status: 502, model: "fast", decision: "fast"}, nil, time.Millisecond)
	tl.add(response{}, errors.New("connection refused"), 100*time.Microsecond)
	tl.add(response{status: 200}, errors.New("unexpected EOF"), 2*time.Millisecond)
	tl.add(response{status: 204, model: "strong", decision: "escalate"}, nil, 60*time.Millisecond)
	if want := []float64{50, 60}; !reflect.DeepEqual(tl.lat, want) {
		t.Errorf("latencies %v, want %v (successes only)", tl.lat, want)
	}
	if tl.errs != 3 {
		t.Errorf("errors %d, want 3", tl.errs)
	}
	if want := map[string]int{"200": 2, "502": 1, "204": 1}; !reflect.DeepEqual(tl.statuses, want) {
		t.Errorf("statuses %v, want %v", tl.statuses, want)
	}
	if want := map[string]int{"speculate": 1, "escalate": 1}; !reflect.DeepEqual(tl.decisions, want) {
		t.Errorf("decisions %v, want %v", tl.decisions, want)
	}
	if want := map[string][]float64{"speculate": {50}, "escalate": {60}}; !reflect.DeepEqual(tl.latBy, want) {
		t.Errorf("latencies by decision %v, want %v", tl.latBy, want)
	}
	if want := map[string]int{"fast": 1, "strong": 1}; !reflect.DeepEqual(tl.models, want) {
		t.Errorf("models %v, want %v", tl.models, want)
	}
}

func TestPercentileNearestRank(t *testing.T) {
	lat := make([]float64, 1000)
	for i := range lat {
		lat[i] = float64(i + 1)
	}
	for _, c := range []struct{ p, want float64 }{{.5, 500}, {.9, 900}, {.99, 990}, {.999, 999}, {1, 1000}, {0, 1}} {
		if got := percentile(lat, c.p); got != c.want {
			t.Errorf("percentile(1..1000, %v) = %v, want %v", c.p, got, c.want)
		}
	}
}
