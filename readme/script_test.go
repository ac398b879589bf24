//go:build unix

package readme

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestBlocks(t *testing.T) {
	md := "# T\n\n```sh\necho a\n```\n\ntext\n\n```json\n{}\n```\n"
	got, err := Blocks(md)
	if err != nil {
		t.Fatal(err)
	}
	want := []Block{{Info: "sh", Line: 4, Lines: []string{"echo a"}}, {Info: "json", Line: 10, Lines: []string{"{}"}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Blocks = %+v, want %+v", got, want)
	}
	if _, err := Blocks("```sh\necho a\n"); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("an unclosed fence gave %v, want an error naming line 1", err)
	}
}

func TestCommands(t *testing.T) {
	b := Block{Info: "sh", Line: 10, Lines: []string{
		"a --x \\",
		"  --y   # exits 3 if refused",
		"cat > f <<'EOF'",
		"k: 1",
		"EOF",
		"b   # exit status 1 or 4",
		"c # route it",
	}}
	got := Commands(b)
	want := []Command{
		{First: 10, Last: 11, Lines: b.Lines[0:2], Allow: []int{3}},
		{First: 12, Last: 14, Lines: b.Lines[2:5]},
		{First: 15, Last: 15, Lines: b.Lines[5:6], Allow: []int{1, 4}},
		{First: 16, Last: 16, Lines: b.Lines[6:7]},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Commands =\n%+v\nwant\n%+v", got, want)
	}
}

func TestReplacePorts(t *testing.T) {
	ports := map[int]int{8080: 40001, 9001: 40002}
	for in, want := range map[string]string{
		"curl -s localhost:8080/v1/route":      "curl -s localhost:40001/v1/route",
		"--addr 127.0.0.1:9001 &":              "--addr 127.0.0.1:40002 &",
		"base_url: http://127.0.0.1:9001/v1":   "base_url: http://127.0.0.1:40002/v1",
		"--addr 127.0.0.1:7000 (not in table)": "--addr 127.0.0.1:7000 (not in table)",
		"score 8080 is no address":             "score 8080 is no address",
	} {
		if got := ReplacePorts(in, ports); got != want {
			t.Errorf("ReplacePorts(%q) = %q, want %q", in, got, want)
		}
	}
	got := Ports([]Block{{Info: "sh", Lines: []string{"a localhost:9001 127.0.0.1:8080", "localhost:8080"}}, {Info: "text", Lines: []string{"localhost:7"}}})
	if want := []int{8080, 9001}; !reflect.DeepEqual(got, want) {
		t.Errorf("Ports = %v, want %v", got, want)
	}
}

// TestScript runs generated scripts through bash: an announced status
// passes, one the README does not announce stops the script and names
// the README line, skipped commands and blocks do not run.
func TestScript(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash is not on PATH")
	}
	run := func(t *testing.T, lines []string, opts ScriptOptions) (string, int) {
		t.Helper()
		dir := t.TempDir()
		p := filepath.Join(dir, "s.sh")
		if err := os.WriteFile(p, []byte(Script([]Block{{Info: "sh", Line: 20, Lines: lines}}, opts)), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("bash", p)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), 0
	}
	t.Run("an announced status lets the script go on", func(t *testing.T) {
		out, code := run(t, []string{"(exit 3)   # exits 3 when refused", "echo after"}, ScriptOptions{})
		if code != 0 || !strings.Contains(out, "after") {
			t.Errorf("exit %d, output %q; want 0 and the next command run", code, out)
		}
	})
	t.Run("a status that is not announced stops it and names the line", func(t *testing.T) {
		out, code := run(t, []string{"echo one", "ls /no/such/dir \\", "  | cat   # exits 3 only", "echo after"}, ScriptOptions{})
		if code != exitUnannounced || strings.Contains(out, "after") || !strings.Contains(out, "README.md:21: exit status 2") {
			t.Errorf("exit %d, output %q; want %d, a line naming README.md:21 and status 2, and nothing after", code, out, exitUnannounced)
		}
	})
	t.Run("a failure inside a command substitution counts", func(t *testing.T) {
		_, code := run(t, []string{"X=$(false)", "echo after"}, ScriptOptions{})
		if code != exitUnannounced {
			t.Errorf("exit %d, want %d", code, exitUnannounced)
		}
	})
	t.Run("skipped commands and blocks do not run", func(t *testing.T) {
		out, code := run(t, []string{"make test", "echo ran"}, ScriptOptions{Skip: map[string]string{"make test": "recursion"}})
		if code != 0 || !strings.Contains(out, `"make test" not run: recursion`) || !strings.Contains(out, "ran") {
			t.Errorf("exit %d, output %q", code, out)
		}
		out, code = run(t, []string{"false"}, ScriptOptions{SkipBlock: func(Block) string { return "no data" }})
		if code != 0 || !strings.Contains(out, "skipped: no data") {
			t.Errorf("exit %d, output %q", code, out)
		}
	})
}
