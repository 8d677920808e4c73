#!/usr/bin/env bash
# Fails when BINARY holds the simulator or the benchmark:
#   bash .ci/binary-clean.sh BINARY [MARKER...]
# The markers default to the crate names `kuryer_sim` and `kuryer_bench` and
# the baseline's `seed_baseline`; their symbols and panic paths stay in any
# binary that links them.
#
# No pipe on purpose: in `strings BIN | grep -q M` under `set -o pipefail`,
# grep exits at the first match, strings then dies of SIGPIPE (141), the
# pipeline reports 141, and an `if` around it takes the "clean" branch on
# exactly the binary that holds the marker. The strings go to a file, and
# grep alone decides: 0 found, 1 not found, anything else an error.
set -euo pipefail

if [ "$#" -lt 1 ]; then
  echo "usage: $0 BINARY [MARKER...]" >&2
  exit 2
fi
bin="$1"
shift
if [ "$#" -eq 0 ]; then
  set -- kuryer_sim kuryer_bench seed_baseline
fi
if ! command -v strings >/dev/null 2>&1; then
  echo "binary-clean: needs strings (binutils)" >&2
  exit 2
fi
if [ ! -f "$bin" ]; then
  echo "binary-clean: $bin does not exist" >&2
  exit 2
fi

patterns=()
for m in "$@"; do patterns+=(-e "$m"); done

dump=$(mktemp)
trap 'rm -f "$dump"' EXIT
strings -a "$bin" > "$dump"

status=0
grep -F -q "${patterns[@]}" "$dump" || status=$?
case "$status" in
  0)
    echo "binary-clean: $bin holds the simulator or the benchmark (strings by marker):" >&2
    grep -F -o "${patterns[@]}" "$dump" | sort | uniq -c >&2 || true
    exit 1
    ;;
  1)
    echo "binary-clean: $bin holds none of: $*"
    ;;
  *)
    echo "binary-clean: grep failed ($status) on the strings of $bin" >&2
    exit 2
    ;;
esac
