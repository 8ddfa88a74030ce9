#!/bin/sh
# Replays every fuzz target's seed corpus (tests/fuzz/corpus/<target>/) and
# regression inputs (tests/fuzz/regressions/<target>/) through the g++-built
# replay binaries (tests/fuzz/replay/fuzz_<target>, `make fuzz-replay`).
# Prints one line per target and, last, "N passed, N failed" counting
# targets. Exit status: non-zero when any target failed or is missing.
# Usage: replay.sh BINARY...
set -u
here=$(cd "$(dirname "$0")" && pwd)
# The targets' temporary files (the session target's data directory, which
# lives as long as the process) go to a directory of this run's own, removed
# at the end.
scratch=$(mktemp -d "${TMPDIR:-/tmp}/tern-fuzz-XXXXXX") || exit 2
trap 'rm -rf "$scratch"' EXIT
# A signal ends the script through exit, so that the EXIT trap runs.
trap 'exit 130' INT HUP
trap 'exit 143' TERM
export TMPDIR="$scratch"
passed=0
failed=0
for binary in "$@"; do
	name=$(basename "$binary")
	name=${name#fuzz_}
	dirs=""
	for d in "$here/corpus/$name" "$here/regressions/$name"; do
		[ -d "$d" ] && dirs="$dirs $d"
	done
	# shellcheck disable=SC2086
	if out=$("$binary" $dirs 2>&1); then
		echo "fuzz replay $name: ok ($(echo "$out" | tail -n 1))"
		passed=$((passed + 1))
	else
		echo "fuzz replay $name: FAILED"
		echo "$out" | grep -E 'replaying|INVARIANT FAILED|what\(\)|terminate' | tail -n 3 | sed 's/^/    /'
		failed=$((failed + 1))
	fi
done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
