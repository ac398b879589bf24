package main

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/datasets/synth"
)

func TestSynthCommand(t *testing.T) {
	t.Run("the default scenario is topics", func(t *testing.T) {
		plain, _, code := run(t, "synth", "--n", "20", "--seed", "3", "--latency")
		named, stderr, code2 := run(t, "synth", "--n", "20", "--seed", "3", "--latency", "--scenario", "topics")
		if code != 0 || code2 != 0 {
			t.Fatalf("exit %d and %d: %s", code, code2, stderr)
		}
		if plain != named {
			t.Error("--scenario topics wrote another log than no --scenario")
		}
	})
	t.Run("--scenario speculation writes that scenario with the id prefix", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "log.jsonl")
		_, stderr, code := run(t, "synth", "--n", "3", "--seed", "2", "--scenario", "speculation", "--latency", "--confidence", "--id-prefix", "test", "-o", path)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		if !strings.Contains(stderr, "3 synthetic records, scenario speculation") {
			t.Errorf("stderr %q does not name the scenario", stderr)
		}
		recs, _, err := datasets.ReadFile(path, datasets.ReadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want, _ := synth.Generate(synth.Options{Scenario: synth.Speculation, N: 3, Seed: 2, Latency: true, Confidence: true, IDPrefix: "test"})
		if !reflect.DeepEqual(recs, want) {
			t.Errorf("got records\n%+v\nwant\n%+v", recs, want)
		}
	})
	// The speculation scenario without latency or confidence wrote a log
	// that cannot show speculation, in silence.
	t.Run("--scenario speculation without --latency or --confidence says what is missing", func(t *testing.T) {
		for _, c := range []struct {
			flags []string
			want  string
		}{
			{nil, "add --latency --confidence"},
			{[]string{"--latency"}, "add --confidence"},
			{[]string{"--confidence"}, "add --latency"},
		} {
			_, stderr, code := run(t, append([]string{"synth", "--n", "3", "--scenario", "speculation", "-o", filepath.Join(t.TempDir(), "s.jsonl")}, c.flags...)...)
			if code != 0 || !strings.Contains(stderr, "only with latency and the fast tier's confidence in the log; "+c.want+"\n") {
				t.Errorf("synth --scenario speculation %v: exit %d, stderr %q; want 0 and %q", c.flags, code, stderr, c.want)
			}
		}
		for _, args := range [][]string{
			{"synth", "--n", "3", "--scenario", "speculation", "--latency", "--confidence"},
			{"synth", "--n", "3"},
		} {
			if _, stderr, _ := run(t, args...); strings.Contains(stderr, "note:") {
				t.Errorf("%v: stderr %q; want no note", args, stderr)
			}
		}
	})
	t.Run("an empty --id-prefix is a usage error, not the default in silence", func(t *testing.T) {
		_, stderr, code := run(t, "synth", "--n", "3", "--id-prefix", "")
		if code != 2 || !strings.Contains(stderr, "--id-prefix is empty") {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
	})
	t.Run("an unknown scenario is a usage error that names the choices", func(t *testing.T) {
		_, stderr, code := run(t, "synth", "--scenario", "chess")
		if code != 2 || !strings.Contains(stderr, `unknown scenario "chess"`) || !strings.Contains(stderr, "--scenario speculation") {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
	})
}

// TestOutputInMissingFolderSaysSo: -o in a folder that does not exist
// named the temporary file the create failed on
// ("open /d/.x.jsonl.tmp-205837755: no such file or directory"); it names
// the folder and says to create it, as train's -o does.
func TestOutputInMissingFolderSaysSo(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "missing", "x.jsonl")
	for _, args := range [][]string{
		{"synth", "--n", "3", "-o", out},
		{"export-libsvm", "--data", sampleLog, "--fast", sampleFast, "--strong", sampleStrong, "-o", out},
	} {
		_, stderr, code := run(t, args...)
		want := "the folder " + filepath.Dir(out) + " does not exist; create it first"
		if code != 1 || !strings.Contains(stderr, want) || strings.Contains(stderr, ".tmp-") {
			t.Errorf("%s -o %s: exit %d, stderr %q; want 1 and %q", args[0], out, code, stderr, want)
		}
	}
}
