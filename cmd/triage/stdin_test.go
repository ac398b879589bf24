package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// runStdin is run with stdin as the command's standard input.
func runStdin(tb testing.TB, stdin []byte, args ...string) (stdout, stderr string, code int) {
	tb.Helper()
	var out, errb bytes.Buffer
	code = Main(context.Background(), args, &Env{Stdin: bytes.NewReader(stdin), Stdout: &out, Stderr: &errb})
	return out.String(), errb.String(), code
}

// TestDashReadsTheCommandsStdin: every command that reads a log reads
// "-" from the standard input it was given, as the importers' --file -
// does, and makes of it what it makes of the file. They read the
// process's os.Stdin, so a command run in-process (Main with an Env, as
// these tests run it) read nothing there: "- is empty".
func TestDashReadsTheCommandsStdin(t *testing.T) {
	skipSlow(t)
	dir := t.TempDir()
	raw := mustRead(t, sampleLog)
	lines := strings.SplitAfter(string(raw), "\n")
	// The routers train on other records than the log the commands read,
	// so no command finds the log in-sample by its path or content: a
	// file would be, standard input never.
	trainLog := writeFile(t, dir, "train.jsonl", strings.Join(lines[400:800], ""))
	log := writeFile(t, dir, "log.jsonl", strings.Join(lines[:400], ""))
	stdin := mustRead(t, log)
	model, tiersModel := filepath.Join(dir, "router.json"), filepath.Join(dir, "tiers.json")
	for _, args := range [][]string{
		{"train", "--data", trainLog, "--fast", sampleFast, "--strong", sampleStrong, "--l2", "0.03", "--folds", "3", "-o", model},
		{"train", "--data", trainLog, "--tiers", sampleFast + "," + sampleStrong, "--l2", "0.03", "--folds", "3", "-o", tiersModel},
	} {
		if _, stderr, code := run(t, args...); code != 0 {
			t.Fatalf("%s: exit %d: %s", strings.Join(args, " "), code, stderr)
		}
	}
	feedback := writeFile(t, dir, "feedback.jsonl", string(stdin))

	// stdoutBut is the command's stdout without its "wrote FILE (version
	// ...)" lines, which name the run's own output.
	stdoutBut := func(stdout, _ string) string {
		return regexp.MustCompile(`(?m)^wrote .*\n`).ReplaceAllString(stdout, "")
	}
	// merged is retrain's line on what it read: the champion was trained
	// on none of the log but with no --holdout, so no record judges and
	// retrain stops (status 3) before it trains.
	merged := func(_, stderr string) string {
		return regexp.MustCompile(`merged .*`).FindString(stderr)
	}
	for _, tt := range []struct {
		name string
		args []string // LOG is the log (its path, then -), OUT a path to write
		what func(stdout, stderr string) string
		code int
	}{
		{"train", []string{"train", "--data", "LOG", "--fast", sampleFast, "--strong", sampleStrong, "--l2", "0.03", "--folds", "3", "-o", "OUT"}, stdoutBut, 0},
		{"train --tiers", []string{"train", "--data", "LOG", "--tiers", sampleFast + "," + sampleStrong, "--l2", "0.03", "--folds", "3", "-o", "OUT", "--json"}, stdoutBut, 0},
		{"eval --model", []string{"eval", "--model", model, "--data", "LOG"}, stdoutBut, 0},
		{"eval --model of tiers", []string{"eval", "--model", tiersModel, "--data", "LOG"}, stdoutBut, 0},
		{"eval --cv", []string{"eval", "--cv", "3", "--data", "LOG", "--fast", sampleFast, "--strong", sampleStrong, "--l2", "0.03"}, stdoutBut, 0},
		{"eval --cv of tiers", []string{"eval", "--cv", "3", "--data", "LOG", "--tiers", sampleFast + "," + sampleStrong, "--l2", "0.03"}, stdoutBut, 0},
		{"score", []string{"score", "--model", model, "--data", "LOG"}, stdoutBut, 0},
		{"export-libsvm", []string{"export-libsvm", "--data", "LOG", "--fast", sampleFast, "--strong", sampleStrong}, stdoutBut, 0},
		{"calibrate", []string{"calibrate", "--model", model, "--data", "LOG", "--target", "strong-share=0.3", "--resamples", "100", "-o", "OUT"}, stdoutBut, 0},
		{"curves", []string{"curves", "--model", model, "--data", "LOG", "--resamples", "100", "--grid", "20", "--accept-grid", "4", "-o", "OUT"}, stdoutBut, 0},
		{"retrain --data -", []string{"retrain", "--model", model, "--data", "LOG", "--feedback", feedback, "-o", "OUT"}, merged, exitRefused},
		{"retrain --feedback -", []string{"retrain", "--model", model, "--data", feedback, "--feedback", "LOG", "-o", "OUT"}, merged, exitRefused},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := func(logArg, out string) []string {
				a := append([]string(nil), tt.args...)
				for i := range a {
					switch a[i] {
					case "LOG":
						a[i] = logArg
					case "OUT":
						a[i] = filepath.Join(t.TempDir(), out)
					}
				}
				return a
			}
			outF, errF, code := run(t, args(log, "out")...)
			if code != tt.code || tt.what(outF, errF) == "" {
				t.Fatalf("from the file: exit %d, want %d: %s", code, tt.code, errF)
			}
			outS, errS, code := runStdin(t, stdin, args("-", "out")...)
			if code != tt.code {
				t.Fatalf("from standard input: exit %d, want %d as from the file: %s", code, tt.code, errS)
			}
			// calibrate names the log it read: its path, or -.
			if got, want := tt.what(outS, errS), strings.ReplaceAll(tt.what(outF, errF), log, "-"); got != want {
				t.Errorf("from standard input:\n%s\nwant, as from the file:\n%s", got, want)
			}
		})
	}

	t.Run("upstream-sim", func(t *testing.T) {
		in := `{"id":"a","prompt":"hello?","outcomes":{"m":{"score":1,"latency_ms":5,"response":"hi there"}}}` + "\n"
		addr, stderr, stop := startCommandIn(t, strings.NewReader(in), `listening on (127\.0\.0\.1:\d+)`, "upstream-sim", "--data", "-", "--model", "m")
		got, err := simAnswer(t, addr, `{"model":"m","messages":[{"role":"user","content":"hello?"}]}`)
		if err != nil || got != "hi there" {
			t.Errorf("answer %q (%v), want the response recorded on standard input", got, err)
		}
		if code := stop(); code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
	})
}

// TestStdinIsReadOnce: two logs given as - in one command line are
// refused, whichever flags name them: standard input can be read once,
// and the second read found it empty (retrain --data - --feedback -
// merged the log with nothing, with a warning, and went on).
func TestStdinIsReadOnce(t *testing.T) {
	skipSlow(t)
	dir := t.TempDir()
	model := trainSample(t, dir)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"retrain", "--model", model, "--data", "-", "--feedback", "-", "-o", filepath.Join(dir, "new.json")}, "--data - and --feedback -: standard input can be read once"},
		{[]string{"train", "--data", "-,-", "--fast", sampleFast, "--strong", sampleStrong, "-o", filepath.Join(dir, "r.json")}, "--data - twice: standard input can be read once"},
		{[]string{"score", "--model", model, "--data", "-", "--data", "-"}, "--data - twice: standard input can be read once"},
		{[]string{"eval", "--model", model, "--data", "-,-"}, "--data - twice: standard input can be read once"},
		{[]string{"curves", "--model", model, "--data", "-", "--data", "-", "-o", filepath.Join(dir, "rep")}, "--data - twice: standard input can be read once"},
	} {
		t.Run(strings.Join(tt.args[:1], " "), func(t *testing.T) {
			_, stderr, code := runStdin(t, mustRead(t, sampleLog), tt.args...)
			if code != 2 || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, %s; want 2 and %q", code, stderr, tt.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "new.json")); err == nil {
		t.Error("retrain wrote an artifact")
	}
}
