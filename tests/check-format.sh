#!/bin/sh
# Checks (or, with --fix, applies) the house style of .clang-format on the
# C++ sources of src/ and tests/.
# Usage: sh tests/check-format.sh [--fix]
CLANG_FORMAT=${CLANG_FORMAT:-clang-format}
mode=check
[ "${1:-}" = --fix ] && mode=fix
sources() {
	find src tests \( -path tests/fuzz/build -o -path tests/fuzz/replay \) -prune -o \
		-type f \( -name '*.cpp' -o -name '*.h' \) -print | LC_ALL=C sort
}
if ! command -v "$CLANG_FORMAT" >/dev/null 2>&1; then
	echo "format: $CLANG_FORMAT not found (Debian package clang-format)" >&2
	exit 1
fi
if [ $mode = fix ]; then
	sources | xargs "$CLANG_FORMAT" --style=file -i
	exit $?
fi
if sources | xargs "$CLANG_FORMAT" --style=file --dry-run -Werror; then
	echo "format ok"
else
	echo "format: files differ from .clang-format; 'make format' rewrites them" >&2
	exit 1
fi
