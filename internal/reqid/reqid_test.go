package reqid

import (
	"encoding/hex"
	"testing"
	"time"
)

// The store relies on ids that sort by the time they were made.
func TestNewSortsByTime(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 14, 0, 0, 0, time.UTC)
	prev := New(t0)
	for i := 1; i < 1000; i++ {
		id := New(t0.Add(time.Duration(i)))
		if len(id) != 32 {
			t.Fatalf("id %q has %d characters, want 32", id, len(id))
		}
		if _, err := hex.DecodeString(id); err != nil {
			t.Fatalf("id %q is not hex: %v", id, err)
		}
		if id <= prev {
			t.Fatalf("id %q, made 1ns after %q, does not sort after it", id, prev)
		}
		prev = id
	}
}

// Ids made in the same nanosecond differ by their random half.
func TestNewIsUniqueWithinAnInstant(t *testing.T) {
	now := time.Now()
	seen := map[string]bool{}
	for range 1000 {
		id := New(now)
		if seen[id] {
			t.Fatalf("id %q handed out twice", id)
		}
		seen[id] = true
	}
}
