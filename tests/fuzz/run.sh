#!/bin/sh
# Runs every fuzz target for FUZZ_TIME seconds (first argument) on a working
# corpus under tests/fuzz/build/corpus/<target>, seeded from
# tests/fuzz/corpus/<target> (which stays as written). Crash inputs go to
# tests/fuzz/build/crashes/. Exits non-zero when any target failed.
# Usage: run.sh SECONDS BINARY...
set -u
time_s=$1
shift
here=$(cd "$(dirname "$0")" && pwd)
build=$here/build
mkdir -p "$build/crashes"
failed=""
for binary in "$@"; do
	target=$(basename "$binary")
	name=${target#fuzz_}
	work=$build/corpus/$name
	seeds=$here/corpus/$name
	mkdir -p "$work"
	dict=""
	[ -f "$here/$name.dict" ] && dict="-dict=$here/$name.dict"
	log=$build/$name.log
	printf '%-16s %ss ... ' "$name" "$time_s"
	# shellcheck disable=SC2086
	"$binary" "$work" "$seeds" $dict -max_total_time="$time_s" -timeout=10 -rss_limit_mb=2048 \
		-max_len=4096 -print_final_stats=1 -artifact_prefix="$build/crashes/$name-" >"$log" 2>&1
	status=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
	if [ "$status" -eq 0 ]; then
		echo "ok (${runs:-?} runs, ${cov:-cov: ?}, corpus $(ls "$work" | wc -l) files)"
	else
		echo "FAILED (exit $status), log: $log"
		grep -E '^(==[0-9]+==ERROR|SUMMARY|INVARIANT FAILED|.*runtime error)|artifact_prefix|Test unit written' "$log" | head -8 | sed 's/^/    /'
		failed="$failed $name"
	fi
done
if [ -n "$failed" ]; then
	echo "fuzz: failures in:$failed (reproduce: tests/fuzz/build/fuzz_<name> <crash file>)"
	exit 1
fi
echo "fuzz: all targets ran ${time_s}s without a failure"
