#!/bin/sh
# Reports the functions of src/ longer than a limit (default 80 lines),
# measured by universal-ctags (Debian package universal-ctags) from the
# line of the name to the closing brace. Long functions become named steps.
# Usage: sh tests/check-function-length.sh [--warn] [LIMIT]
# Exit status: 1 when a function is over the limit, unless --warn (then the
# list is printed as warnings and the status is 0).
warn_only=no
[ "${1:-}" = --warn ] && { warn_only=yes; shift; }
limit=${1:-80}
if ! ctags --version 2>/dev/null | grep -q 'Universal Ctags'; then
	echo "function length: universal-ctags not found (Debian package universal-ctags)" >&2
	[ $warn_only = yes ] && exit 0
	exit 1
fi
long=$(ctags -R --languages=C++ --fields=+ne --kinds-c++=f -x --_xformat='%{end} %n %F %N' src |
	awk -v limit="$limit" 'NF >= 4 && $1 ~ /^[0-9]+$/ { n = $1 - $2 + 1; if (n > limit) print n, $3 ":" $2, $4 }' |
	sort -rn)
if [ -z "$long" ]; then
	echo "function length ok (none over $limit lines)"
	exit 0
fi
count=$(echo "$long" | wc -l)
if [ $warn_only = yes ]; then
	echo "function length: warning: $count functions over $limit lines:"
	echo "$long" | sed 's/^/  /'
	exit 0
fi
echo "function length: $count functions over $limit lines:" >&2
echo "$long" | sed 's/^/  /' >&2
exit 1
