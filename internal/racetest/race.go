//go:build race

package racetest

// Enabled is true when the binary was built with -race.
const Enabled = true
