//go:build unix

package readme

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// skipCommands are README commands the test does not run, and why.
var skipCommands = map[string]string{
	"make test": "it is the command that runs this test",
}

// tools are the programs the README's blocks call besides bin/triage.
var tools = []string{"bash", "curl", "python3", "make", "go"}

// maxRun bounds the whole README run; make test must stay under four
// minutes on a 2-core machine, and the README takes about a minute.
const maxRun = 4 * time.Minute

// TestREADME runs every shell block of README.md in a temporary copy of
// the repository (see the package documentation for the rules).
func TestREADME(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole README (about a minute); not in -short")
	}
	var missing []string
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		t.Skipf("the README's commands need %s, not on PATH (.ci/run installs them)", strings.Join(missing, ", "))
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := Blocks(string(md))
	if err != nil {
		t.Fatalf("README.md: %v", err)
	}
	checkJSONBlocks(t, blocks)

	tmp := workDir(t, root)
	work := filepath.Join(tmp, "triage")
	if err := copyRepo(root, work); err != nil {
		t.Fatal(err)
	}
	data := sharedData(root)
	if data != "" {
		if err := os.MkdirAll(filepath.Join(tmp, "shared"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(data, filepath.Join(tmp, "shared", "datasets")); err != nil {
			t.Fatal(err)
		}
	}
	ports, err := freePorts(Ports(blocks))
	if err != nil {
		t.Fatal(err)
	}
	script := Script(blocks, ScriptOptions{
		Ports: ports,
		Skip:  skipCommands,
		SkipBlock: func(b Block) string {
			if data == "" && strings.Contains(strings.Join(b.Lines, "\n"), "shared/datasets") {
				return "the shared datasets are absent (set TRIAGE_DATASETS)"
			}
			return ""
		},
	})
	scriptPath := filepath.Join(tmp, "readme.sh")
	curlHome := filepath.Join(tmp, "curl")
	if err := os.WriteFile(scriptPath, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(curlHome, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(curlHome, ".curlrc"), []byte(curlrc()), 0o644); err != nil {
		t.Fatal(err)
	}

	timeout := maxRun
	if d, ok := t.Deadline(); ok && time.Until(d)-30*time.Second < timeout {
		timeout = time.Until(d) - 30*time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	logPath := filepath.Join(tmp, "readme.log")
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.CommandContext(ctx, "bash", scriptPath)
	cmd.Dir = work
	env := append(os.Environ(), "CURL_HOME="+curlHome, "TRIAGE_ADMIN_TOKEN=")
	if data != "" {
		env = append(env, "TRIAGE_DATASETS="+filepath.Join(tmp, "shared", "datasets"))
	}
	cmd.Env = env
	// Output goes to a file, not a pipe: the servers the script leaves in
	// the background hold its descriptors, and Wait would wait for them.
	cmd.Stdout, cmd.Stderr = log, log
	// Its own process group, so the background servers can be stopped
	// with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	start := time.Now()
	runErr := cmd.Run()
	if cmd.Process != nil {
		stopGroup(cmd.Process.Pid)
	}
	out, _ := os.ReadFile(logPath)
	t.Logf("README run took %s; ports %v; blocks:\n%s", time.Since(start).Round(100*time.Millisecond), ports, markers(out))
	if testing.Verbose() {
		t.Logf("the whole output:\n%s", out)
	}
	if runErr != nil {
		why := runErr.Error()
		if ctx.Err() != nil {
			why = fmt.Sprintf("it did not finish in %s", timeout)
		}
		t.Fatalf("README.md's commands failed: %s\n%s\n--- last lines of the output (the whole script is %s) ---\n%s",
			why, failureLine(out), scriptPath, tail(out, 60))
	}
}

// workDir is an empty folder for the run, the same one each time for a
// given repository: the go command keys its build cache on a package's
// folder, so make quickstart in a copy at a new path each run compiled the
// whole module from scratch (about 15 s of CPU; a third of this test). A
// lock beside it keeps two runs for one repository from sharing it; the
// folder is removed when the test ends.
func workDir(t *testing.T, root string) string {
	t.Helper()
	sum := sha256.Sum256([]byte(root))
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("triage-readme-%x", sum[:6]))
	lock, err := os.OpenFile(dir+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		lock.Close()
		t.Fatal(err)
	}
	clean := func() error { return os.RemoveAll(dir) }
	t.Cleanup(func() {
		if err := clean(); err != nil {
			t.Error(err)
		}
		lock.Close() // releases the lock
	})
	if err := clean(); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// checkJSONBlocks fails on a json block line that is not a JSON value: the
// README's json blocks show log records, one per line.
func checkJSONBlocks(t *testing.T, blocks []Block) {
	t.Helper()
	for _, b := range blocks {
		if b.Info != "json" {
			continue
		}
		for i, l := range b.Lines {
			if strings.TrimSpace(l) == "" {
				continue
			}
			var v any
			if err := json.Unmarshal([]byte(l), &v); err != nil {
				t.Errorf("README.md:%d: a json block line is not a JSON value on its own (%v); a log holds one record per line", b.Line+i, err)
			}
		}
	}
}

// curlrc makes an HTTP error fail curl, with the body still printed where
// this curl knows --fail-with-body (7.76 and later).
func curlrc() string {
	help, _ := exec.Command("curl", "--help", "all").Output()
	if bytes.Contains(help, []byte("--fail-with-body")) {
		return "fail-with-body\n"
	}
	return "fail\n"
}

// sharedData is the shared datasets folder, or "" when it is absent.
func sharedData(root string) string {
	d := os.Getenv("TRIAGE_DATASETS")
	if d == "" {
		d = filepath.Join(root, "..", "shared", "datasets")
	}
	d, err := filepath.Abs(d)
	if err != nil {
		return ""
	}
	if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
		return ""
	}
	return d
}

// copyRepo copies the repository's files to dst, as a fresh clone would
// have them: no .git, no build outputs.
func copyRepo(src, dst string) error {
	skip := map[string]bool{"bin": true, "out": true}
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		if d.Name() == ".git" && d.IsDir() {
			return filepath.SkipDir
		}
		if d.IsDir() {
			if skip[rel] {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if d.Name() == ".git" {
			return nil // a worktree's pointer to its repository
		}
		if !d.Type().IsRegular() || strings.HasSuffix(rel, ".test") || strings.HasSuffix(rel, ".prof") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, fi.Mode().Perm())
	})
}

// freePorts maps each port to the one $TRIAGE_README_PORT_<port> names,
// else to a free one on 127.0.0.1 below the kernel's ephemeral range. All
// listeners are held until every port is chosen, so no two are the same.
//
// A chosen port is released before the README's server binds it. One
// from the ephemeral range (what 127.0.0.1:0 gives) could meanwhile
// become the local port of a client connection, and make test runs the
// other packages' tests beside this one, opening thousands of them (the
// idle-connection flood of cmd/triage alone holds a thousand): the
// server's bind then fails with "address already in use". A port below
// the range is never handed out that way.
func freePorts(want []int) (map[int]int, error) {
	out := make(map[int]int, len(want))
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	low := ephemeralLow()
	for _, p := range want {
		if v := os.Getenv(fmt.Sprintf("TRIAGE_README_PORT_%d", p)); v != "" {
			q, err := strconv.Atoi(v)
			if err != nil || q < 1 || q > 65535 {
				return nil, fmt.Errorf("TRIAGE_README_PORT_%d is %q, want a port number", p, v)
			}
			out[p] = q
			continue
		}
		ln, err := listenBelow(low)
		if err != nil {
			return nil, fmt.Errorf("find a free port for %d: %w", p, err)
		}
		lns = append(lns, ln)
		out[p] = ln.Addr().(*net.TCPAddr).Port
	}
	return out, nil
}

// The ports the README's servers get are outside the kernel's ephemeral
// range, so no client connection of a test running beside this one can
// hold one when the server binds it; and distinct.
func TestFreePortsAreBelowTheEphemeralRange(t *testing.T) {
	low := ephemeralLow()
	if low-portFloor < 1000 {
		t.Skipf("the ephemeral range starts at %d (/proc/sys/net/ipv4/ip_local_port_range); no room below it", low)
	}
	want := []int{8080, 8081, 9001, 9002, 9003}
	for _, p := range want {
		t.Setenv(fmt.Sprintf("TRIAGE_README_PORT_%d", p), "")
	}
	got, err := freePorts(want)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range want {
		q := got[p]
		if q < portFloor || q >= low {
			t.Errorf("port %d became %d, want one in [%d, %d), below the ephemeral range", p, q, portFloor, low)
		}
		if seen[q] {
			t.Errorf("port %d became %d, which another port got too", p, q)
		}
		seen[q] = true
	}
}

// portFloor is the lowest port freePorts picks: above the ports of
// well-known and registered services most machines run.
const portFloor = 10000

// ephemeralLow is the first port of the kernel's ephemeral range (Linux's
// net.ipv4.ip_local_port_range), or 0 where it cannot be read.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0
	}
	low, err := strconv.Atoi(f[0])
	if err != nil {
		return 0
	}
	return low
}

// listenBelow listens on a random free port in [portFloor, low), and on
// 127.0.0.1:0 when that span is too narrow to pick from or every try
// found its port taken. Random, so that two runs on one machine (two
// checkouts) seldom try the same ports.
func listenBelow(low int) (net.Listener, error) {
	if low-portFloor >= 1000 {
		for range 100 {
			p := portFloor + rand.IntN(low-portFloor)
			if ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p)); err == nil {
				return ln, nil
			}
		}
	}
	return net.Listen("tcp", "127.0.0.1:0")
}

// stopGroup stops what the script left running (its servers): SIGTERM,
// so they close their databases, then SIGKILL for any still there after
// five seconds.
func stopGroup(pgid int) {
	if err := syscall.Kill(-pgid, syscall.SIGTERM); errors.Is(err, syscall.ESRCH) {
		return
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		if errors.Is(syscall.Kill(-pgid, 0), syscall.ESRCH) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	syscall.Kill(-pgid, syscall.SIGKILL)
}

// markers are the script's "### README.md:LINE (Ns)" lines: where each
// block started, and when.
func markers(out []byte) string {
	var b strings.Builder
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "### ") {
			b.WriteString("  " + strings.TrimPrefix(l, "### ") + "\n")
		}
	}
	return b.String()
}

// failureLine is the trap's "readme: README.md:LINE: ..." line, if any.
func failureLine(out []byte) string {
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "readme: ") {
			return l
		}
	}
	return "(no README line named: the script stopped without a failing command)"
}

func tail(out []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
