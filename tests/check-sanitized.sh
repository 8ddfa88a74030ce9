#!/bin/sh
# Runs the unit, session-dialogue and black-box tests against a build of the
# committed tree (HEAD, cloned into a temporary directory) compiled with
# AddressSanitizer and UndefinedBehaviorSanitizer: ternd, ternctl and
# sendmail.tern as the black-box tests start them, and the test programs.
# A memory error or undefined behaviour anywhere stops that process with a
# report; leaks are reported when a process exits. Reports are written
# under DIR/reports/ and listed at the end. tests/sanitizer-leaks.supp
# names the leaks known to be outside our reach, with the reason.
# Exit status: non-zero when a test failed or any report was written.
#
# Left out: the test of Dovecot's checkpassword passdb, whose auth process
# runs `ternctl checkpassword` under a virtual memory limit too small for
# the sanitizer's shadow memory (the child dies before main).
#
# Usage: sh tests/check-sanitized.sh [DIR]   (default: a new directory in /tmp)
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$(mktemp -d /tmp/tern-sanitized.XXXXXX)}
flags="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined"
echo "sanitized build of $(git -C "$src" rev-parse --short HEAD) in $dir/tree"
rm -rf "$dir/tree" "$dir/reports"
git clone -q "$src" "$dir/tree"
mkdir -p "$dir/reports"
cd "$dir/tree"
autoreconf -fi >/dev/null 2>&1
./configure --quiet CXXFLAGS="$flags" LDFLAGS="-fsanitize=address,undefined"
make -s -j"$(nproc)" all tests/unit-tests tests/session-tests tests/blackbox-tests >"$dir/build.log" 2>&1 || {
	tail -n 20 "$dir/build.log"
	exit 1
}
export ASAN_OPTIONS="detect_leaks=1:log_path=$dir/reports/asan"
# Known leaks outside our code, each explained in the file.
export LSAN_OPTIONS="suppressions=$dir/tree/tests/sanitizer-leaks.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:log_path=$dir/reports/ubsan"
status=0
tests/unit-tests >"$dir/unit.log" 2>&1 || status=1
tests/session-tests >"$dir/session.log" 2>&1 || status=1
tests/blackbox-tests -tce="ternctl checkpassword*" >"$dir/blackbox.log" 2>&1 || status=1
for log in unit session blackbox; do
	echo "$log: $(grep '^\[doctest\] test cases:' "$dir/$log.log" | tail -n 1)"
done
reports=$(ls "$dir/reports")
if [ -n "$reports" ]; then
	echo "sanitizer reports:"
	for r in $reports; do echo "  $dir/reports/$r: $(grep -m 1 -E 'ERROR|runtime error' "$dir/reports/$r")"; done
	status=1
fi
[ "$status" = 0 ] && echo "sanitized tests passed, no report" || echo "sanitized tests FAILED (logs in $dir)"
exit $status
