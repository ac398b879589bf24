package datasets

import (
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestResponsesOutliveTheProcess: which tier stored a response is read
// back after the store is closed and opened again, an entry past its
// expiry is not found, and a later put prunes it from the file.
func TestResponsesOutliveTheProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.db")
	t0 := time.Unix(1_800_000_000, 0)
	s := openStoreAt(t, path, StoreOptions{NoSync: true})
	err := s.PutResponses([]StoredResponse{
		{ID: "resp_a", Tier: "fast", Expires: t0.Add(time.Hour)},
		{ID: "resp_b", Tier: "strong", Expires: t0.Add(2 * time.Hour)},
	}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStoreAt(t, path, StoreOptions{NoSync: true})
	defer s.Close()
	for _, tc := range []struct {
		id, tier string
		at       time.Time
		found    bool
	}{
		{"resp_a", "fast", t0, true},
		{"resp_b", "strong", t0, true},
		{"resp_a", "", t0.Add(time.Hour), false},
		{"resp_c", "", t0, false},
	} {
		got, found, err := s.LookupResponse(tc.id, tc.at)
		if err != nil {
			t.Fatal(err)
		}
		if found != tc.found || got.Tier != tc.tier {
			t.Errorf("%s at %v: got %+v, %v; want tier %q, found %v", tc.id, tc.at.Sub(t0), got, found, tc.tier, tc.found)
		}
	}
	// Expired entries leave the file with the next put; a renewed one
	// stays.
	if err := s.PutResponses([]StoredResponse{{ID: "resp_b", Tier: "strong", Expires: t0.Add(5 * time.Hour)}}, t0.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	var ids, exps int
	s.db.View(func(tx *bolt.Tx) error {
		ids, exps = tx.Bucket(bucketResponses).Stats().KeyN, tx.Bucket(bucketResponseExpiry).Stats().KeyN
		return nil
	})
	if ids != 1 || exps != 1 {
		t.Errorf("after the prune: %d ids, %d expiry entries; want 1 and 1 (resp_b renewed)", ids, exps)
	}
	if got, found, _ := s.LookupResponse("resp_b", t0.Add(4*time.Hour)); !found || got.Tier != "strong" {
		t.Errorf("renewed resp_b: %+v, %v", got, found)
	}
	if err := s.PutResponses([]StoredResponse{{ID: "", Tier: "fast", Expires: t0}}, t0); err == nil {
		t.Error("an empty response id was kept; want an error")
	}
}
