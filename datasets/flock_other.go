//go:build !unix

package datasets

import (
	"os"
	"time"
)

// sharedLock is a no-op where flock does not exist; bbolt's own lock
// still guards the read-write open.
func sharedLock(*os.File, time.Duration) error { return nil }
