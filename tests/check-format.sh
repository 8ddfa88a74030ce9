#!/bin/sh
# Checks (or, with --fix, applies) the house style of .clang-format on the
# C++ sources of src/ and tests/. While the file .clang-format-pending exists
# at the top of the tree the check is skipped with a message: the tree is
# reformatted in one commit of its own, which removes that file.
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
if [ -e .clang-format-pending ]; then
	echo "format check skipped: .clang-format-pending exists (the tree is not reformatted yet)"
	exit 0
fi
if sources | xargs "$CLANG_FORMAT" --style=file --dry-run -Werror; then
	echo "format ok"
else
	echo "format: files differ from .clang-format; 'make format' rewrites them" >&2
	exit 1
fi
