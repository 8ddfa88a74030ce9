#!/bin/sh
# Checks that clang++ can build a libFuzzer target with ASan and UBSan
# (Debian: clang and libclang-rt-14-dev). When it cannot, prints the exact
# apt-get line and fails; it installs nothing itself.
cxx=${1:-clang++}
packages="clang libclang-rt-14-dev"
if ! command -v "$cxx" >/dev/null 2>&1; then
	echo "make fuzz: $cxx not found. Install it (as root) with:" >&2
	echo "  apt-get install -y --no-install-recommends $packages" >&2
	exit 1
fi
tmp=$(mktemp -d /tmp/tern-fuzz-check.XXXXXX) || exit 1
trap 'rm -rf "$tmp"' EXIT
printf '%s\n' '#include <cstddef>' '#include <cstdint>' \
	'extern "C" int LLVMFuzzerTestOneInput(const uint8_t*, size_t) { return 0; }' >"$tmp/t.cpp"
if ! "$cxx" -fsanitize=fuzzer,address,undefined -o "$tmp/t" "$tmp/t.cpp" >"$tmp/log" 2>&1; then
	echo "make fuzz: $cxx cannot link -fsanitize=fuzzer,address,undefined (the fuzzer runtime is missing):" >&2
	sed 's/^/  /' "$tmp/log" | head -5 >&2
	echo "Install it (as root) with:" >&2
	echo "  apt-get install -y --no-install-recommends $packages" >&2
	exit 1
fi
