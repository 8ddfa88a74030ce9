#!/bin/sh
# Builds the Debian package with `make deb` into a temporary folder and
# checks it: its control data (conffiles, maintainer scripts), its files,
# unpacked with dpkg-deb -x (install paths filled in, binaries stripped),
# lintian without errors, and systemd-analyze verify on the unit as
# unpacked. Then, as root, it installs the package in a throwaway
# container, never on this machine: in a private mount namespace
# (unshare -m), an overlay with this machine's / as its read-only lower
# dir and its upper and work dirs in the temporary folder, with /proc,
# /dev and /sys bound in, and a policy-rc.d that keeps services from
# starting. In that chroot, dpkg -i must leave the package installed, the
# tern user, /etc/tern/tern.json as a conffile, /var/lib/tern owned by
# tern, a unit systemd-analyze verify accepts, the sendmail alternative
# and a ternd -n that runs; dpkg --purge must then succeed. Without root
# or overlay mounts it prints "skipped install: <reason>" and the other
# checks still decide.
# Usage: sh tests/deb-check.sh REPO. Exit 0 ok, 1 a failure, 77 skipped
# (a tool is missing: contrib/debian-packages.txt lists them).
# sh tests/deb-check.sh --install-in-overlay DIR DEB is the install step,
# run by the script itself inside the new mount namespace.
set -u

# The install step, in the private mount namespace unshare -m made: every
# mount below disappears with it, and every write goes to DIR/upper.
# Exit 0 ok, 1 a failure, 77 skipped (the overlay cannot be mounted).
install_in_overlay() {
	dir=$1
	deb=$2
	m=$dir/merged
	ifail=0
	ifailed() {
		echo "FAIL: install: $*"
		ifail=$((ifail + 1))
	}
	in_root() {
		chroot "$m" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C DEBIAN_FRONTEND=noninteractive "$@"
	}
	mkdir -p "$dir/upper" "$dir/work" "$m" || return 1
	if ! mount -t overlay overlay -o "lowerdir=/,upperdir=$dir/upper,workdir=$dir/work" "$m" 2>"$dir/mount.err"; then
		echo "skipped install: overlay mount failed: $(tr '\n' ' ' <"$dir/mount.err")"
		return 77
	fi
	trap 'for d in sys dev proc; do umount "$m/$d" 2>/dev/null; done; umount "$m" 2>/dev/null' EXIT
	# Never go on into a chroot that is not the overlay.
	mountpoint -q "$m" || { echo "FAIL: install: $m is not mounted"; return 1; }
	for d in proc dev sys; do
		mount --bind "/$d" "$m/$d" || { echo "FAIL: install: cannot bind /$d"; return 1; }
	done
	in_root /usr/sbin/policy-rc.d ternd start >/dev/null 2>&1
	if [ $? != 101 ]; then
		printf '#!/bin/sh\n# The install test: no service starts.\nexit 101\n' >"$m/usr/sbin/policy-rc.d"
		chmod 755 "$m/usr/sbin/policy-rc.d"
	fi
	name=$(basename "$deb")
	cp "$deb" "$m/tmp/$name" || return 1

	if ! in_root dpkg -i "/tmp/$name" >"$dir/dpkg-i.out" 2>&1; then
		cat "$dir/dpkg-i.out"
		echo "FAIL: install: dpkg -i $name"
		return 1
	fi
	status=$(in_root dpkg-query -W -f='${Status}' tern 2>&1)
	[ "$status" = "install ok installed" ] || ifailed "dpkg -s tern says: $status"
	[ -n "$(in_root getent passwd tern)" ] || ifailed "no user tern"
	[ -f "$m/etc/tern/tern.json" ] || ifailed "no /etc/tern/tern.json"
	in_root dpkg-query -W -f='${Conffiles}\n' tern | grep -q '^ /etc/tern/tern.json ' ||
		ifailed "/etc/tern/tern.json is not a conffile"
	owner=$(in_root stat -c %U /var/lib/tern 2>&1)
	[ "$owner" = tern ] || ifailed "/var/lib/tern is owned by $owner"
	if in_root sh -c 'command -v systemd-analyze' >/dev/null 2>&1; then
		# As on the unpacked unit: any line printed is a failure.
		in_root systemd-analyze verify --man=no /lib/systemd/system/ternd.service >"$dir/verify.out" 2>&1
		st=$?
		if [ $st != 0 ] || [ -s "$dir/verify.out" ]; then
			cat "$dir/verify.out"
			ifailed "systemd-analyze verify on the installed unit"
		fi
	fi
	if grep -q 'update-alternatives --install /usr/sbin/sendmail sendmail /usr/sbin/sendmail.tern' \
		"$(dirname "$dir")/control/postinst" 2>/dev/null; then
		in_root update-alternatives --query sendmail >"$dir/alt.out" 2>&1
		grep -qx 'Alternative: /usr/sbin/sendmail.tern' "$dir/alt.out" || {
			cat "$dir/alt.out"
			ifailed "update-alternatives --query sendmail has no sendmail.tern"
		}
	fi
	in_root /usr/sbin/ternd -n -c /etc/tern/tern.json >"$dir/ternd-n.out" 2>&1
	st=$?
	# A certificate missing in the container may fail the check, as long
	# as ternd ran and named its config: no crash, no missing library.
	if [ $st != 0 ]; then
		if [ $st -ge 126 ] || grep -q 'error while loading shared libraries' "$dir/ternd-n.out" ||
			! grep -q 'tern.json' "$dir/ternd-n.out"; then
			cat "$dir/ternd-n.out"
			ifailed "ternd -n -c /etc/tern/tern.json exited $st"
		else
			echo "installed ternd -n (exit $st): $(head -n 1 "$dir/ternd-n.out")"
		fi
	fi
	if ! in_root dpkg --purge tern >"$dir/purge.out" 2>&1; then
		cat "$dir/purge.out"
		ifailed "dpkg --purge tern"
	elif in_root dpkg-query -W -f='${Status}' tern 2>/dev/null | grep -q 'installed'; then
		ifailed "tern is still installed after dpkg --purge"
	fi
	[ $ifail = 0 ] && echo "installed and purged $name in an overlay container"
	[ $ifail = 0 ]
}

if [ "${1:-}" = --install-in-overlay ]; then
	install_in_overlay "${2:?}" "${3:?}"
	exit $?
fi

repo=${1:?usage: deb-check.sh REPO}
for tool in dpkg-buildpackage dpkg-deb lintian fakeroot dh; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "skipped: $tool is missing (debhelper, dpkg-dev, lintian, fakeroot)"
		exit 77
	fi
done
work=$(mktemp -d /tmp/tern-deb-XXXXXX)
# --one-file-system: never into a mount, should one have outlived its namespace.
trap 'rm -rf --one-file-system "$work"' EXIT
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

# lintian leaves the database of its ELF index (mldbm-elf-*) in its
# TMPDIR: this one goes with $work.
TMPDIR="$work" lintian --fail-on error --tag-display-limit 0 "$deb" >"$work/lintian.out" 2>&1
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

if [ "$(id -u)" != 0 ]; then
	echo "skipped install: not root"
elif ! command -v unshare >/dev/null 2>&1 || ! command -v chroot >/dev/null 2>&1; then
	echo "skipped install: unshare or chroot is missing"
elif ! unshare -m --propagation private true 2>"$work/unshare.err"; then
	echo "skipped install: unshare -m failed: $(tr '\n' ' ' <"$work/unshare.err")"
else
	unshare -m --propagation private sh "$0" --install-in-overlay "$work/overlay" "$deb"
	status=$?
	[ $status = 0 ] || [ $status = 77 ] || fail "install in the overlay container"
fi

[ $failures = 0 ] && echo "package ok"
[ $failures = 0 ]
