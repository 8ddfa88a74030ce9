#!/bin/sh
# Runs the unit and black-box test binaries and ends with one plain summary
# line, "N passed, N failed", counting doctest test cases of both.
# Exit status: non-zero when any test binary failed.
set -u
status=0
passed=0
failed=0
for t in tests/unit-tests tests/blackbox-tests; do
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
[ "$status" = 0 ] || [ "$failed" -gt 0 ] || failed=1
echo "$passed passed, $failed failed"
exit $status
