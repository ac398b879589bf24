#!/usr/bin/env bash
# Durable feedback writes per second: 64 concurrent clients post
# POST /v1/feedback to triage serve (each answered only after its group
# commit, fsync included) for DURATION (default 10s), ROUNDS times (default
# 3). Prints acknowledged writes/s with latency, the server's mean commit
# group and commit time, and this disk's fdatasync latency measured just
# before (the figure is bound by it: 64 writers / commit time).
# Loopback only. Run: bash bench/serve/feedback.sh
source "$(dirname "$0")/common.sh"
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
PORT=${PORT:-18091}
small_model "$WORK/router.json"
cat >"$WORK/fsync.go" <<'GO'
package main

import ("fmt"; "os"; "syscall"; "time")

func main() {
	f, _ := os.Create(os.Args[1])
	b := make([]byte, 4096)
	t := time.Now()
	for i := 0; i < 200; i++ { f.WriteAt(b, int64(i%8)*4096); syscall.Fdatasync(int(f.Fd())) }
	fmt.Printf("fdatasync of a 4 KiB overwrite on this disk: %s\n", time.Since(t)/200)
}
GO
(cd "$WORK" && go run fsync.go "$WORK/fsync.tmp")
start_serve "$PORT" "$WORK/feedback.db" "$WORK/router.json" --config "$ANY_MODEL"
for r in $(seq "$ROUNDS"); do
  before=$(curl -sS "http://127.0.0.1:$PORT/metrics" | awk '/^triage_feedback_(commit|log_appl)/ {print $1"="$2}' | tr '\n' ' ')
  "$WORK/feedbackload" -url "http://127.0.0.1:$PORT" -clients 64 -duration "$DURATION" -ids 2000 | tee -a "$WORK/rounds.txt"
  after=$(curl -sS "http://127.0.0.1:$PORT/metrics" | awk '/^triage_feedback_(commit|log_appl)/ {print $1"="$2}' | tr '\n' ' ')
  awk -v b="$before" -v a="$after" 'BEGIN {
    n = split(b, x, " "); for (i = 1; i <= n; i++) { split(x[i], kv, "="); B[kv[1]] = kv[2] }
    n = split(a, x, " "); for (i = 1; i <= n; i++) { split(x[i], kv, "="); A[kv[1]] = kv[2] }
    c = A["triage_feedback_commits_total"] - B["triage_feedback_commits_total"]
    w = A["triage_feedback_commit_writes_total"] - B["triage_feedback_commit_writes_total"]
    s = A["triage_feedback_commit_seconds_total"] - B["triage_feedback_commit_seconds_total"]
    na = A["triage_feedback_log_applies_total"] - B["triage_feedback_log_applies_total"]
    sa = A["triage_feedback_log_apply_seconds_total"] - B["triage_feedback_log_apply_seconds_total"]
    if (c > 0) printf "  round %d: %d commits, mean group %.1f writes, mean commit %.2f ms; %d log applies, mean %.1f ms\n", '"$r"', c, w / c, 1000 * s / c, na, (na > 0 ? 1000 * sa / na : 0)
  }'
done
sed -E 's/.*writes \(([0-9]+)\/s\).*/\1/' "$WORK/rounds.txt" | sort -n |
  awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "median over %d rounds: %.0f acknowledged writes/s (64 clients)\n", NR, m }'
