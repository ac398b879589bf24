package main

import "runtime/debug"

// setGCPercent sets the collector's target to pct for a command's run
// unless the user set GOGC, and returns the function that restores it.
// Commands pick their own: train holds large pointer-free rows and wants
// a tight heap, serve and upstream-sim make short-lived garbage per request
// around a small live heap and want fewer collections (see their
// constants).
func setGCPercent(env *Env, pct int) (restore func()) {
	if env.Getenv("GOGC") != "" {
		return func() {}
	}
	old := debug.SetGCPercent(pct)
	return func() { debug.SetGCPercent(old) }
}
