package datasets

import (
	"path/filepath"
	"strings"
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
	err := s.AppendDecisions([]LogEntry{
		pinEntry("req_a", t0, &StoredResponse{ID: "resp_a", Tier: "fast", Expires: t0.Add(time.Hour)}),
		pinEntry("req_b", t0, &StoredResponse{ID: "resp_b", Tier: "strong", Expires: t0.Add(2 * time.Hour)}),
	})
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
	if err := s.AppendDecisions([]LogEntry{pinEntry("req_c", t0.Add(3*time.Hour), &StoredResponse{ID: "resp_b", Tier: "strong", Expires: t0.Add(5 * time.Hour)})}); err != nil {
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
	if err := s.AppendDecisions([]LogEntry{pinEntry("req_d", t0, &StoredResponse{ID: "", Tier: "fast", Expires: t0})}); err == nil {
		t.Error("an empty response id was kept; want an error")
	}
}

// pinEntry is a decision-log entry whose answer stored the response r.
func pinEntry(id string, ts time.Time, r *StoredResponse) LogEntry {
	return LogEntry{ID: id, TS: ts, Decision: Decision{Kind: "fast", ModelVersion: "v1"}, Request: []byte(`{"prompt":"hi"}`), Response: r}
}

// TestResponsesCommitWithTheirRecords: a batch's stored responses are
// written in its decision-log commit, so a batch that fails leaves
// neither its records nor their entries. Written in a commit of their
// own after the records, they cost a second fsync per batch, and a
// failure of that commit failed a batch whose records were in the db.
func TestResponsesCommitWithTheirRecords(t *testing.T) {
	s := openStoreAt(t, filepath.Join(t.TempDir(), "f.db"), StoreOptions{NoSync: true})
	defer s.Close()
	t0 := time.Unix(1_800_000_000, 0)
	pin := &StoredResponse{ID: "resp_a", Tier: "fast", Expires: t0.Add(time.Hour)}
	bad := pinEntry("req_bad", t0, nil)
	bad.Request = []byte("not json")
	for _, tc := range []struct {
		name  string
		batch []LogEntry
		ok    bool
	}{
		{"a batch that fails keeps no entry", []LogEntry{pinEntry("req_a", t0, pin), bad}, false},
		{"a batch whose entry cannot be keyed keeps no record", []LogEntry{pinEntry("req_a", t0, &StoredResponse{ID: strings.Repeat("r", MaxIDBytes+1), Tier: "fast", Expires: t0.Add(time.Hour)})}, false},
		{"a batch that commits keeps both", []LogEntry{pinEntry("req_a", t0, pin)}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.AppendDecisions(tc.batch)
			if (err == nil) != tc.ok {
				t.Fatalf("AppendDecisions: %v, want ok %v", err, tc.ok)
			}
			has, err := s.HasRequest("req_a")
			if err != nil {
				t.Fatal(err)
			}
			_, found, err := s.LookupResponse("resp_a", t0)
			if err != nil {
				t.Fatal(err)
			}
			if has != tc.ok || found != tc.ok {
				t.Errorf("record kept %v, entry kept %v; want both %v", has, found, tc.ok)
			}
		})
	}
}
