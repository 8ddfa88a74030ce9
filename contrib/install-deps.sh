#!/bin/sh
# Installs the Debian packages listed in contrib/debian-packages.txt that are
# missing. As root it runs apt-get; otherwise it prints the exact command to
# run and fails, so the build never half-works on a machine without them.
set -eu
here=$(dirname "$0")
list=$(grep -v '^[[:space:]]*#' "$here/debian-packages.txt" | grep -v '^[[:space:]]*$')
missing=""
for p in $list; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$status" in
	*" installed") ;;
	*) missing="$missing $p" ;;
	esac
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
	echo "installing missing packages:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	# shellcheck disable=SC2086
	apt-get install -y -q --no-install-recommends $missing
else
	echo "tern needs these Debian packages; run as root:" >&2
	echo "  apt-get install -y$missing" >&2
	exit 1
fi
