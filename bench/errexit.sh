# shellcheck shell=bash
# Sourced first by the bench scripts (bench/quality has its own ways):
# `set -Eeuo pipefail`, plus an ERR trap that says which command failed,
# in which file and at which line, before set -e exits. Without it a step
# whose stderr is thrown away (2>/dev/null, or a tool that says nothing)
# stops the script with no message at all. Prints nothing on success.
#
#   . "$(dirname "$0")/../errexit.sh"    # in place of set -euo pipefail
#
# Also defines:
#   need TOOL HOW          exit 2 up front unless TOOL is on PATH, saying
#                          how to install it
#   quiet CMD...           CMD with its stderr kept in a log instead of the
#                          terminal (for 2>/dev/null); if CMD fails, prints
#                          the log's tail and returns CMD's status
#   logged LOG CMD...      CMD with stdout and stderr in LOG (kept); if CMD
#                          fails, prints LOG's tail and returns CMD's status
set -Eeuo pipefail

# bench_on_err STATUS LINE COMMAND PIPESTATUS: the ERR trap.
bench_on_err() {
	local rc=$1 line=$2 cmd=$3 statuses=$4
	# The trap also runs where set -e is off (set +e around a command whose
	# status is examined, command substitutions): nothing fails there.
	case $- in *e*) ;; *) return 0 ;; esac
	local file=${BASH_SOURCE[1]:-$0}
	# BASH_COMMAND is the last command of a pipeline only, which is rarely
	# the one that failed, and `return N` when a function returned N: show
	# the line itself then, when the file can be read.
	local pipeline=""
	[ "${statuses// /}" = "$statuses" ] || pipeline=" (pipeline exit statuses: $statuses)"
	if [ -n "$pipeline" ] || [ "${cmd%% *}" = return ]; then
		local text=""
		[ -r "$file" ] && text=$(awk -v n="$line" 'NR >= n { sub(/^[ \t]+/, ""); if (sub(/\\$/, "")) { printf "%s", $0; next } print; exit }' "$file" 2>/dev/null)
		cmd=${text:-$cmd}
	fi
	cmd+=$pipeline
	local where="line $line"
	[ "${file##*/}" = "${0##*/}" ] || where="${file##*/} line $line"
	local i calls=""
	for ((i = 1; i < ${#FUNCNAME[@]} - 1; i++)); do
		calls+=", in ${FUNCNAME[i]} called from ${BASH_SOURCE[i + 1]##*/} line ${BASH_LINENO[i]}"
	done
	echo "$0: $where: failed (exit $rc): $cmd$calls" >&2
}
trap 'bench_on_err "$?" "$LINENO" "$BASH_COMMAND" "${PIPESTATUS[*]}"' ERR

need() {
	command -v "$1" >/dev/null 2>&1 && return 0
	echo "$0: needs $1, which is not on PATH ($2)" >&2
	exit 2
}

# bench_tail LOG WHAT: the last lines of LOG on stderr, introduced by WHAT.
bench_tail() {
	echo "$0: $2" >&2
	tail -n "${ERR_TAIL:-30}" "$1" | sed 's/^/    /' >&2
}

quiet() {
	local log rc=0
	log=$(mktemp "${TMPDIR:-/tmp}/bench-stderr.XXXXXX")
	"$@" 2>"$log" || rc=$?
	[ "$rc" = 0 ] || bench_tail "$log" "${1##*/} ${2:-} failed (exit $rc); the end of its stderr:"
	rm -f "$log"
	return "$rc"
}

logged() {
	local log=$1 rc=0
	shift
	"$@" >"$log" 2>&1 || rc=$?
	[ "$rc" = 0 ] || bench_tail "$log" "${1##*/} ${2:-} failed (exit $rc); the end of its output ($log):"
	return "$rc"
}
