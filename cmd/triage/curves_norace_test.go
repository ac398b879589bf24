//go:build !race

package main

// raceEnabled: see curves_race_test.go.
const raceEnabled = false
