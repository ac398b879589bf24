// Package racetest tells tests whether the race detector is on, so the
// statistical tests that train routers on thousands of records can skip
// under -race (the detector slows their fits about tenfold) and run a
// second time without it (the Makefile's SLOW_PKGS and SLOW_CMD lists).
// What runs concurrently inside those fits is covered under -race by
// smaller tests.
package racetest

import "testing"

// SkipSlow skips a statistical test under -race; the message says how to
// run it.
func SkipSlow(t testing.TB) {
	t.Helper()
	if Enabled {
		t.Skip("slow under -race; make test runs it without -race (Makefile SLOW_PKGS, SLOW_CMD)")
	}
}
