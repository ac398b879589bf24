# Sourced by the bench/serve scripts: build triage, start/stop servers on
# loopback, and a tiny model so a script needs no training.
. "$(dirname "${BASH_SOURCE[0]}")/../errexit.sh"  # set -Eeuo pipefail, and name a failing step
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
need curl "apt-get install -y curl"
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
go build -o "$WORK/triage" ./cmd/triage
go build -o "$WORK/feedbackload" ./bench/serve/feedbackload
export TRIAGE_ADMIN_TOKEN=${TRIAGE_ADMIN_TOKEN:-bench-token}
T="$WORK/triage"

# start_serve PORT DB MODEL [flags...]: starts triage serve in the
# background, waits until it listens; sets SERVE_PID.
start_serve() {
  local port=$1 db=$2 model=$3
  shift 3
  : >"$WORK/serve-$port.log"
  "$T" serve --model "$model" --db "$db" --addr "127.0.0.1:$port" "$@" 2>>"$WORK/serve-$port.log" &
  SERVE_PID=$!
  PIDS+=("$SERVE_PID")
  for _ in $(seq 200); do
    grep -q "listening on" "$WORK/serve-$port.log" && return 0
    kill -0 "$SERVE_PID" 2>/dev/null || break
    sleep 0.05
  done
  cat "$WORK/serve-$port.log"
  return 1
}

# ANY_MODEL is a config that lets feedback name any model: feedbackload
# gives each client a model name of its own (so its writes are new keys),
# and the server otherwise takes feedback for the model's tiers only.
ANY_MODEL="$WORK/any-model.yaml"
printf 'feedback:\n  allow_other_models: true\n' >"$ANY_MODEL"

# small_model PATH: a router trained on the bundled synthetic sample log.
small_model() {
  quiet "$T" train --data testdata/sample/log.jsonl --fast synthetic/fast-small \
    --strong synthetic/strong-large --l2 0.01 -o "$1" >/dev/null
}

admin() { curl -sS -H "Authorization: Bearer $TRIAGE_ADMIN_TOKEN" "$@"; }
