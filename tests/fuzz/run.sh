#!/bin/sh
# Runs every fuzz target for FUZZ_TIME seconds (first argument) on a working
# corpus under tests/fuzz/build/corpus/<target>, seeded from
# tests/fuzz/corpus/<target> (which stays as written). libFuzzer runs in fork
# mode and goes on after a crash, so one run finds more than one bug; crash
# inputs go to tests/fuzz/build/crashes/<target>-crash-*, and each distinct
# failure is listed with one reproducer. Exits non-zero when any target
# failed. Inputs under tests/fuzz/regressions/<target>/ (bugs found
# earlier) are replayed first; each one still failing is listed.
# Usage: run.sh SECONDS BINARY...
set -u
time_s=$1
shift
here=$(cd "$(dirname "$0")" && pwd)
# The targets' temporary files (libFuzzer's, and the session target's data
# directory, which lives as long as each process) go to a directory of this
# run's own, removed at the end.
scratch=$(mktemp -d "${TMPDIR:-/tmp}/tern-fuzz-XXXXXX") || exit 2
trap 'rm -rf "$scratch"' EXIT
# A signal ends the script through exit, so that the EXIT trap runs.
trap 'exit 130' INT HUP
trap 'exit 143' TERM
export TMPDIR="$scratch"
build=$here/build
crashes=$build/crashes
mkdir -p "$crashes"
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
	stamp=$build/.$name.stamp
	: >"$stamp"
	# Known bugs first: each input must now pass.
	if [ -d "$here/regressions/$name" ]; then
		for input in "$here/regressions/$name"/*; do
			[ -f "$input" ] || continue
			if ! out=$("$binary" "$input" 2>&1); then
				why=$(echo "$out" | grep -m 1 -E 'INVARIANT FAILED|runtime error|what\(\)|ERROR: AddressSanitizer|ERROR: libFuzzer' | sed 's/^==[0-9]*==//')
				echo "$name regression ${input#$here/}: STILL FAILS: $why"
				case "$failed" in *" $name"*) ;; *) failed="$failed $name" ;; esac
			fi
		done
	fi
	printf '%-16s %ss ... ' "$name" "$time_s"
	# shellcheck disable=SC2086
	"$binary" "$work" "$seeds" $dict -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
		-max_total_time="$time_s" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
		-artifact_prefix="$crashes/$name-" >"$log" 2>&1
	new=$(find "$crashes" -name "$name-*" -newer "$stamp" -type f | sort)
	execs=$(grep -o '^#[0-9]*' "$log" | tail -n 1 | tr -d '#')
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
	if [ -z "$new" ]; then
		echo "ok (${execs:-?} runs, ${cov:-cov: ?}, corpus $(ls "$work" | wc -l) files)"
		continue
	fi
	echo "FAILED: $(echo "$new" | wc -l) crash input(s), log: $log"
	case "$failed" in *" $name"*) ;; *) failed="$failed $name" ;; esac
	# Replay the inputs (at most 40) and list each distinct failure once.
	seen=""
	for input in $(echo "$new" | head -n 40); do
		why=$("$binary" "$input" 2>&1 | grep -m 1 -E 'INVARIANT FAILED|runtime error|what\(\)|ERROR: AddressSanitizer|ERROR: LeakSanitizer|ERROR: libFuzzer' |
			sed -e 's/^==[0-9]*==//' -e 's/0x[0-9a-f]*/0x…/g' -e "s/'[^']*'/'…'/g" -e 's/[0-9]\{6,\}/N/g')
		[ -n "$why" ] || why="(does not reproduce alone)"
		case "$seen" in *"|$why|"*) continue ;; esac
		seen="$seen|$why|"
		echo "    $why"
		echo "      reproduce: $binary $input"
	done
done
if [ -n "$failed" ]; then
	echo "fuzz: failures in:$failed"
	exit 1
fi
echo "fuzz: all targets ran ${time_s}s without a failure"
