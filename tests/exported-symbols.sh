#!/bin/sh
# A shared library exports the symbols it should and nothing else, under
# its SONAME: uhmm_* for libuhmm and libuhmm_uring; for libuhmm_hooks,
# exactly the libc functions it replaces.
# Usage: exported-symbols.sh LIB SONAME [EXACT-LIST]
lib=$1
soname=$2
exact=$3
syms=$(nm -D --defined-only "$lib" | awk '{print $3}' | sort)
[ -n "$syms" ] || { echo "no exported symbols in $lib"; exit 1; }
if [ -n "$exact" ]; then
	want=$(echo "$exact" | tr ' ' '\n' | sort)
	if [ "$syms" != "$want" ]; then
		echo "exported: $(echo $syms); wanted: $(echo $want)"; exit 1
	fi
	echo "$(echo "$syms" | wc -l) symbols, as listed"
else
	bad=$(echo "$syms" | grep -v '^uhmm_')
	if [ -n "$bad" ]; then
		echo "exported symbols without the uhmm_ prefix:"; echo "$bad"
		exit 1
	fi
	echo "$(echo "$syms" | wc -l) symbols, all uhmm_*"
fi
readelf -d "$lib" | grep -q "SONAME.*\[$soname\]" || { echo "no SONAME $soname"; exit 1; }
