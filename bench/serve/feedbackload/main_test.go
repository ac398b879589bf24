package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestVerify(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	export := write("export.jsonl", `{"id":"a","outcomes":{"m1":{"score":0.5},"m2":{"score":1}}}`+"\n"+`{"id":"b","outcomes":{"m1":{"score":0}}}`+"\n")
	for _, tc := range []struct {
		name, acked, wantErr string
	}{
		{"every acknowledged write is exported", "a\tm1\t0.5\na\tm2\t1\nb\tm1\t0\n", ""},
		{"a missing write is lost", "a\tm1\t0.5\nc\tm1\t1\n", "1 acknowledged feedback writes are missing"},
		{"another score is lost", "b\tm1\t0.25\n", "1 acknowledged feedback writes are missing"},
		// A crash run in which nothing was acknowledged checked nothing.
		{"no acknowledged write fails", "", "nothing was checked"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := runVerify(write("acked.tsv", tc.acked), export)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("got %v, want nil", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("got %v, want an error with %q", err, tc.wantErr)
			}
		})
	}
}

// A server that drops feedback connections gives transport errors, not
// acknowledged writes: the load must fail, not print a rate.
func TestLoadFailsOnTransportErrors(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/route":
			fmt.Fprintf(w, `{"request_id":"r%d"}`, n.Add(1))
		case "/v1/feedback":
			// Every other post: the connection is dropped unanswered.
			if n.Add(1)%2 == 0 {
				c, _, err := w.(http.Hijacker).Hijack()
				if err == nil {
					c.Close()
				}
				return
			}
			w.Write([]byte(`{}`))
		}
	}))
	defer srv.Close()
	err := runLoad(srv.URL, 2, 200*time.Millisecond, 4)
	if err == nil || !strings.Contains(err.Error(), "failed on the connection") {
		t.Errorf("got %v, want an error about failed connections", err)
	}
}
