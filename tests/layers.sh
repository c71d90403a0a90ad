#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Dependencies between the library's layers run one way (docs/design.md,
# "Layers"):
#
#	devices -> cache -> range -> core <- sources -> prim
#
# and prim/, the OS calls, is below every layer but core, which makes none.
# hooks/ and fabric/ are libraries of their own on the public API only.
# This checks every #include "dir/..." line of src/ against that order.
# Usage: layers.sh SRCDIR. Exit 0, or 1 listing each line that breaks it.
set -eu
src=${1:?usage: layers.sh SRCDIR}

# Which directories a layer may include, besides its own and the public
# headers (include/).
allowed() {
	case $1 in
	core) echo "" ;;
	prim) echo "" ;;
	source) echo "core prim" ;;
	range) echo "core prim" ;;
	cache) echo "range core prim" ;;
	devices) echo "cache range core prim" ;;
	hooks) echo "" ;;
	fabric) echo "" ;;
	*) echo "?" ;;
	esac
}

bad=0
for dir in "$src"/*/; do
	layer=$(basename "$dir")
	ok=$(allowed "$layer")
	if [ "$ok" = "?" ]; then
		echo "layers: $layer/ is in no layer: add it to tests/layers.sh" >&2
		bad=1
		continue
	fi
	for f in "$dir"*.c "$dir"*.h; do
		[ -e "$f" ] || continue
		# #include "x/y.h": x must be this layer or an allowed one.
		grep -n '^#include "[a-z]*/' "$f" | while IFS= read -r line; do
			inc=$(echo "$line" | sed 's/.*#include "\([a-z]*\)\/.*/\1/')
			case " $layer $ok " in
			*" $inc "*) ;;
			*) echo "layers: ${f#$src/}:${line%%:*}: $layer/ must not include $inc/" ;;
			esac
		done
	done
done > "${TMPDIR:-/tmp}/uhmm-layers.$$"
out="${TMPDIR:-/tmp}/uhmm-layers.$$"
if [ -s "$out" ]; then
	cat "$out" >&2
	bad=1
fi
rm -f "$out"
[ "$bad" = 0 ] && echo "layers: every #include of src/ follows devices -> cache -> range -> core <- sources -> prim"
exit $bad
