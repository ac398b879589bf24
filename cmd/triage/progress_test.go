package main

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/triage-router/triage/internal/syncbuf"
)

func TestProgress(t *testing.T) {
	t.Run("off a terminal there is no callback and stop does nothing", func(t *testing.T) {
		prog, stop := newProgressAfter(&Env{Stderr: io.Discard}, 0)
		if prog != nil {
			t.Error("a callback off a terminal")
		}
		stop()
	})
	t.Run("on a terminal a step draws a bar with its count, and a new step replaces it", func(t *testing.T) {
		out := &syncbuf.Buffer{}
		prog, stop := newProgressAfter(&Env{Stderr: out, IsTerminal: true}, 0)
		prog("cross-validating: 5 trainings", 3, 20)
		waitFor(t, out, "cross-validating: 5 trainings")
		waitFor(t, out, "3/20")
		prog("writing the report", 0, 0)
		waitFor(t, out, "writing the report")
		stop()
	})
}

// waitFor waits (at most five seconds) until out holds want.
func waitFor(t *testing.T, out *syncbuf.Buffer, want string) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for !strings.Contains(out.String(), want) {
		select {
		case <-deadline:
			t.Fatalf("output %q never held %q", out.String(), want)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// TestLongCommandsAreQuietWhenPiped: off a terminal, eval --cv, train and
// curves write their results and nothing that looks like a bar.
func TestLongCommandsAreQuietWhenPiped(t *testing.T) {
	dir := t.TempDir()
	model, log := filepath.Join(dir, "r.json"), filepath.Join(dir, "log.jsonl")
	for _, args := range [][]string{
		{"synth", "--n", "300", "--latency", "--confidence", "-o", log},
		{"eval", "--cv", "2", "--data", log, "--fast", sampleFast, "--strong", sampleStrong, "--folds", "2", "--l2", "0.01", "--hash-bits", "14"},
		{"train", "--data", log, "--fast", sampleFast, "--strong", sampleStrong, "--folds", "2", "--l2", "0.01", "--hash-bits", "14", "-o", model},
		{"curves", "--model", model, "--data", log, "--grid", "8", "--accept-grid", "2", "--resamples", "100", "-o", filepath.Join(dir, "rep")},
	} {
		var stdout, stderr bytes.Buffer
		if code := Main(context.Background(), args, &Env{Stdout: &stdout, Stderr: &stderr}); code != 0 {
			t.Fatalf("%s exited %d: %s", args[0], code, stderr.String())
		}
		if s := stderr.String() + stdout.String(); strings.ContainsAny(s, "\r█⠋") {
			t.Errorf("%s printed a bar off a terminal: %q", args[0], s)
		}
	}
}
