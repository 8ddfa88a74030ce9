#!/bin/sh
# Builds the Debian package with `make deb` into a temporary folder and
# checks it without installing it on this machine: its control data
# (conffiles, maintainer scripts), its files, unpacked with dpkg-deb -x
# (install paths filled in, binaries stripped), lintian without errors,
# and systemd-analyze verify on the unit as unpacked.
# Usage: sh tests/deb-check.sh REPO. Exit 0 ok, 1 a failure, 77 skipped
# (a tool is missing: contrib/debian-packages.txt lists them).
set -u
repo=${1:?usage: deb-check.sh REPO}
for tool in dpkg-buildpackage dpkg-deb lintian fakeroot dh; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "skipped: $tool is missing (debhelper, dpkg-dev, lintian, fakeroot)"
		exit 77
	fi
done
work=$(mktemp -d /tmp/tern-deb-XXXXXX)
trap 'rm -rf "$work"' EXIT
failures=0
fail() {
	echo "FAIL: $*"
	failures=$((failures + 1))
}

# noopt: -O0 compiles in half the time; the checks do not depend on it.
if ! DEB_BUILD_OPTIONS="noopt nocheck" make -C "$repo" --no-print-directory deb DEB_BUILD_DIR="$work/build" \
	>"$work/build.log" 2>&1; then
	tail -n 60 "$work/build.log"
	echo "FAIL: make deb"
	exit 1
fi
deb=$(ls "$work"/build/tern_*.deb 2>/dev/null | head -n 1)
[ -n "$deb" ] || { echo "FAIL: no tern_*.deb in $work/build"; ls "$work/build"; exit 1; }
echo "built $(basename "$deb")"

dpkg-deb -I "$deb" >"$work/info"
grep -q '^ Package: tern$' "$work/info" || fail "control: Package is not tern"
grep -q '^ Depends: .*adduser' "$work/info" || fail "control: no Depends on adduser"
dpkg-deb -e "$deb" "$work/control"
for f in /etc/tern/tern.json /etc/init.d/ternd /etc/logrotate.d/ternd; do
	grep -qx "$f" "$work/control/conffiles" || fail "conffiles: $f missing"
done
grep -q 'adduser --system --group --home /var/lib/tern' "$work/control/postinst" || fail "postinst: no adduser --system"
grep -q 'update-alternatives --install /usr/sbin/sendmail sendmail /usr/sbin/sendmail.tern' "$work/control/postinst" ||
	fail "postinst: no sendmail alternative"
grep -q 'ternd.service' "$work/control/postinst" || fail "postinst: the unit is not enabled"
grep -q 'update-alternatives --remove sendmail' "$work/control/prerm" || fail "prerm: the alternative stays"

dpkg-deb -c "$deb" >"$work/contents"
for f in ./usr/sbin/ternd ./usr/sbin/ternctl ./usr/sbin/sendmail.tern ./usr/sbin/mailq.tern \
	./lib/systemd/system/ternd.service ./etc/init.d/ternd ./etc/logrotate.d/ternd ./etc/tern/tern.json \
	./usr/lib/tern/certbot-deploy-hook ./usr/share/man/man8/ternd.8.gz ./usr/share/man/man8/ternctl.8.gz \
	./usr/share/man/man8/sendmail.tern.8.gz ./usr/share/man/man8/mailq.tern.8.gz ./usr/share/man/man5/tern.json.5.gz ./var/lib/tern/ ./var/log/tern/; do
	grep -q " $f\( \|$\)" "$work/contents" || fail "contents: $f missing"
done

root="$work/root"
dpkg-deb -x "$deb" "$root"
unit="$root/lib/systemd/system/ternd.service"
if grep -n '@[A-Z]*@' "$unit" "$root/etc/init.d/ternd" "$root/etc/logrotate.d/ternd" "$root/usr/lib/tern/certbot-deploy-hook"; then
	fail "a placeholder was not filled in"
fi
grep -q '^ExecStart=/usr/sbin/ternd -c /etc/tern/tern.json' "$unit" || fail "unit: ExecStart is not /usr/sbin/ternd"
grep -q '^DAEMON=/usr/sbin/ternd$' "$root/etc/init.d/ternd" || fail "init script: DAEMON is not /usr/sbin/ternd"
for setting in 'User=tern' 'ProtectSystem=strict' 'NoNewPrivileges=yes' 'AmbientCapabilities=CAP_NET_BIND_SERVICE' \
	'CapabilityBoundingSet=CAP_NET_BIND_SERVICE' 'ReadWritePaths=/var/lib/tern /var/log/tern'; do
	grep -qx "$setting" "$unit" || fail "unit: no $setting"
done
for b in ternd ternctl sendmail.tern; do
	if readelf -S "$root/usr/sbin/$b" | grep -q '\.debug_info'; then fail "$b is not stripped"; fi
done
"$root/usr/sbin/ternd" -V | grep -q '^ternd ' || fail "the packaged ternd does not run"
"$root/usr/sbin/ternd" -n -c "$root/etc/tern/tern.json" >"$work/check.out" 2>&1 || {
	cat "$work/check.out"
	fail "the packaged config does not pass ternd -n"
}

lintian --fail-on error --tag-display-limit 0 "$deb" >"$work/lintian.out" 2>&1
status=$?
cat "$work/lintian.out"
[ $status = 0 ] || fail "lintian reports errors"

if command -v systemd-analyze >/dev/null 2>&1; then
	# The unit as unpacked, its commands pointed at the unpacked binaries
	# (the package is not installed here). verify exits 0 on an unknown
	# key, so any line it prints is a failure.
	sed "s|/usr/sbin/|$root/usr/sbin/|g" "$unit" >"$work/ternd.service"
	systemd-analyze verify --man=no "$work/ternd.service" >"$work/verify.out" 2>&1
	status=$?
	if [ $status != 0 ] || [ -s "$work/verify.out" ]; then
		cat "$work/verify.out"
		fail "systemd-analyze verify"
	fi
else
	echo "systemd-analyze is missing: the unit is not verified"
fi

[ $failures = 0 ] && echo "package ok"
[ $failures = 0 ]
