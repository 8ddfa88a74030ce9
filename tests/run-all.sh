#!/bin/sh
# Runs the unit, session-dialogue and black-box test binaries and the fuzz replay (every saved
# fuzz input through its target, tests/fuzz/replay.sh) and ends with one
# plain summary line, "N passed, N failed", counting doctest test cases of
# both binaries plus one case per fuzz target.
# Exit status: non-zero when any test binary or fuzz target failed.
set -u
status=0
passed=0
failed=0
for t in tests/unit-tests tests/session-tests tests/blackbox-tests; do
	out=$(mktemp)
	"$t" 2>&1 | tee "$out"
	line=$(grep '^\[doctest\] test cases:' "$out" | tail -n 1)
	p=$(echo "$line" | sed -n 's/.*| *\([0-9]*\) passed.*/\1/p')
	f=$(echo "$line" | sed -n 's/.*| *\([0-9]*\) failed.*/\1/p')
	passed=$((passed + ${p:-0}))
	failed=$((failed + ${f:-0}))
	# A binary that crashed or printed no summary counts as a failure.
	if [ -z "$line" ] || ! grep -q '^\[doctest\] Status: SUCCESS!' "$out"; then status=1; fi
	rm -f "$out"
done
# The replay binaries are built here when missing, so that running this
# script after `make all tests/unit-tests tests/blackbox-tests` replays too.
replay_bins=$(for src in tests/fuzz/fuzz_*.cpp; do b=${src%.cpp}; echo "tests/fuzz/replay/${b#tests/fuzz/}"; done)
out=$(mktemp)
# shellcheck disable=SC2086
if ${MAKE:-make} --no-print-directory -s $replay_bins >"$out" 2>&1; then
	# shellcheck disable=SC2086
	sh tests/fuzz/replay.sh $replay_bins 2>&1 | tee "$out"
	line=$(tail -n 1 "$out")
	p=$(echo "$line" | sed -n 's/^\([0-9]*\) passed.*/\1/p')
	f=$(echo "$line" | sed -n 's/.*, \([0-9]*\) failed$/\1/p')
	passed=$((passed + ${p:-0}))
	failed=$((failed + ${f:-0}))
	[ -n "$p" ] && [ "${f:-1}" = 0 ] || status=1
else
	cat "$out"
	echo "fuzz replay: the replay binaries did not build"
	status=1
fi
rm -f "$out"
[ "$status" = 0 ] || [ "$failed" -gt 0 ] || failed=1
echo "$passed passed, $failed failed"
exit $status
