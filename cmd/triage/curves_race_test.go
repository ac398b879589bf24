//go:build race

package main

// raceEnabled is true under -race, where the slow end-to-end tests of
// curves and calibrate (which train routers) skip: the race detector
// slows the fitting about tenfold and they are single-goroutine anyway.
const raceEnabled = true
