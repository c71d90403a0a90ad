#!/bin/sh
# A shared library exports uhmm_* symbols and nothing else, under its SONAME.
# Usage: exported-symbols.sh LIB SONAME
lib=$1
soname=$2
syms=$(nm -D --defined-only "$lib" | awk '{print $3}')
[ -n "$syms" ] || { echo "no exported symbols in $lib"; exit 1; }
bad=$(echo "$syms" | grep -v '^uhmm_')
if [ -n "$bad" ]; then
	echo "exported symbols without the uhmm_ prefix:"; echo "$bad"; exit 1
fi
echo "$(echo "$syms" | wc -l) symbols, all uhmm_*"
readelf -d "$lib" | grep -q "SONAME.*\[$soname\]" || { echo "no SONAME $soname"; exit 1; }
