package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/triage-router/triage/internal/syncbuf"
)

// startCommand runs the CLI in a goroutine until the returned stop is
// called, and waits for pattern's first submatch on stderr.
func startCommand(t *testing.T, pattern string, args ...string) (match string, stderr *syncbuf.Buffer, stop func() int) {
	t.Helper()
	return startCommandIn(t, nil, pattern, args...)
}

// startCommandIn is startCommand with stdin as the command's standard
// input.
func startCommandIn(t *testing.T, stdin io.Reader, pattern string, args ...string) (match string, stderr *syncbuf.Buffer, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stderr = &syncbuf.Buffer{}
	code := make(chan int, 1)
	go func() { code <- Main(ctx, args, &Env{Stdin: stdin, Stdout: io.Discard, Stderr: stderr}) }()
	re := regexp.MustCompile(pattern)
	stop = func() int { cancel(); return <-code }
	for range 1000 {
		if m := re.FindStringSubmatch(stderr.String()); m != nil {
			return m[1], stderr, stop
		}
		select {
		case c := <-code:
			t.Fatalf("command exited with %d before printing %q: %s", c, pattern, stderr.String())
		case <-time.After(5 * time.Millisecond):
		}
	}
	cancel()
	t.Fatalf("command did not print %q: %s", pattern, stderr.String())
	return "", nil, nil
}

func TestUpstreamSimCommand(t *testing.T) {
	dir := t.TempDir()
	// The second record is a feedback export's: an outcome with the
	// recorded answer and no score, which the sim plays back too.
	data := writeFile(t, dir, "log.jsonl",
		`{"id":"a","prompt":"hello?","outcomes":{"m":{"score":1,"latency_ms":5,"confidence":-0.3,"response":"hi there"}}}`+"\n"+
			`{"id":"b","prompt":"served?","outcomes":{"m":{"latency_ms":5,"response":"from the export"}},"decision":{"decision":"fast","p_hard":0.1,"model_version":"v"}}`+"\n")
	addr, stderr, stop := startCommand(t, `listening on (127\.0\.0\.1:\d+)`,
		"upstream-sim", "--data", data, "--model", "m", "--latency-scale", "0.5")
	for prompt, want := range map[string]string{"hello?": "hi there", "served?": "from the export"} {
		got, err := simAnswer(t, addr, `{"model":"m","messages":[{"role":"user","content":"`+prompt+`"}],"logprobs":true}`)
		if err != nil || got != want {
			t.Errorf("answer to %q = %q (%v), want the recorded response %q", prompt, got, err, want)
		}
	}
	if code := stop(); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr.String(), "2 requests, 2 answered, 0 cancelled") {
		t.Errorf("stderr lacks the final counts: %s", stderr)
	}
}

func TestUpstreamSimUsage(t *testing.T) {
	dir := t.TempDir()
	data := writeFile(t, dir, "log.jsonl", `{"id":"a","prompt":"p","outcomes":{"m":{"score":1}}}`+"\n")
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no --data is a usage error", []string{"upstream-sim", "--model", "m"}, 2, "--data is required"},
		{"no --model is a usage error", []string{"upstream-sim", "--data", data}, 2, "--model is required"},
		{"a bad --reply is a usage error", []string{"upstream-sim", "--data", data, "--model", "m", "--reply", "x"}, 2, "--reply"},
		{"a model absent from the log is a data error naming the log's models", []string{"upstream-sim", "--data", data, "--model", "gpt"}, 1, "the log's models are m (1)"},
		{"--stream-chunks 0 is refused, not taken as the default", []string{"upstream-sim", "--data", data, "--model", "m", "--stream-chunks", "0"}, 2, "--stream-chunks is 0"},
		{"a scale for a fixed wait is refused, not ignored", []string{"upstream-sim", "--data", data, "--model", "m", "--fixed-latency", "5ms", "--latency-scale", "0.1"}, 2, "--latency-scale and --fixed-latency exclude each other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, code := run(t, tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, stderr, tt.code, tt.want)
			}
		})
	}
}

// simAnswer posts a chat completion body to the sim at addr and returns
// its one choice's content; an error when the answer does not decode or
// does not hold one choice.
func simAnswer(t *testing.T, addr, body string) (string, error) {
	t.Helper()
	resp, err := http.Post("http://"+addr+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct {
		Choices []struct {
			Message struct{ Content string } `json:"message"`
		} `json:"choices"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		return "", err
	}
	if len(got.Choices) != 1 {
		return "", fmt.Errorf("%d choices, want 1", len(got.Choices))
	}
	return got.Choices[0].Message.Content, nil
}

// TestUpstreamSimUsageNamesEveryFlag: upstream-sim's usage line, and
// docs/proxy.md's copy of it, gave every flag but --stream-chunks and
// --skip-bad, which only the flag list showed.
func TestUpstreamSimUsageNamesEveryFlag(t *testing.T) {
	stdout, _, code := run(t, "upstream-sim", "-h")
	if code != 0 {
		t.Fatalf("upstream-sim -h: exit %d", code)
	}
	line, _, _ := strings.Cut(stdout, "\n")
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "proxy.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, doc, _ := strings.Cut(string(b), "\n## upstream-sim\n")
	doc, _, _ = strings.Cut(doc, "\n- ") // the usage block, before the first bullet
	for f := range flagsOf(t, "upstream-sim") {
		if f == "h" || f == "help" {
			continue
		}
		if !strings.Contains(line, "--"+f+" ") && !strings.Contains(line, "--"+f+"]") {
			t.Errorf("upstream-sim's usage line %q does not give --%s", line, f)
		}
		if !strings.Contains(doc, "--"+f) {
			t.Errorf("docs/proxy.md's upstream-sim usage does not give --%s", f)
		}
	}
}
