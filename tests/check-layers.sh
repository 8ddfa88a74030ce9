#!/bin/sh
# Fails when a file in a lower layer of doc/design.md includes a header of a
# higher layer. Arguments: the layer folders of src/, bottom to top.
# Usage: sh tests/check-layers.sh util smtp message ...
status=0
rank=0
ranks=""
for l in "$@"; do ranks="$ranks $l=$rank"; rank=$((rank+1)); done
rank_of() { for p in $ranks; do [ "${p%%=*}" = "$1" ] && { echo "${p#*=}"; return; }; done; echo -1; }
for l in "$@"; do
	mine=$(rank_of "$l")
	for f in src/"$l"/*.h src/"$l"/*.cpp; do
		[ -f "$f" ] || continue
		for inc in $(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([a-z_]*\)\/.*".*/\1/p' "$f"); do
			theirs=$(rank_of "$inc")
			if [ "$theirs" -gt "$mine" ]; then
				echo "layer violation: $f ($l) includes $inc/ (a higher layer)" >&2
				status=1
			fi
		done
	done
done
[ $status = 0 ] && echo "layers ok"
exit $status
