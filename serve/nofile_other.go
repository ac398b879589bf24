//go:build !unix

package serve

// fileLimit is unknown here; the connection cap takes its largest default.
func fileLimit() uint64 { return 0 }
