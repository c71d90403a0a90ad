#!/bin/sh
# The shared library exports uhmm_* symbols and nothing else.
lib=$1
syms=$(nm -D --defined-only "$lib" | awk '{print $3}')
[ -n "$syms" ] || { echo "no exported symbols in $lib"; exit 1; }
bad=$(echo "$syms" | grep -v '^uhmm_')
if [ -n "$bad" ]; then
	echo "exported symbols without the uhmm_ prefix:"; echo "$bad"; exit 1
fi
echo "$(echo "$syms" | wc -l) symbols, all uhmm_*"
readelf -d "$lib" | grep -q 'SONAME.*libuhmm.so.0' || { echo "no SONAME libuhmm.so.0"; exit 1; }
