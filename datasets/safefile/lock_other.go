//go:build !unix

package safefile

import "os"

// lockTemp does nothing where flock does not exist.
func lockTemp(*os.File) error { return nil }

// canTellStale is false here: without the lock a live writer's temporary
// file cannot be told from a dead one's, so none is removed.
const canTellStale = false
