#!/bin/sh
# SPDX-License-Identifier: MIT
# uhmm installs like a C library: `cmake --install` into a temporary
# prefix gives libraries, headers, pkg-config files naming that prefix, the
# uhmm command and every man page; examples/ builds from them with
# pkg-config only (never the source tree), warning-free, runs, and links
# statically with `pkg-config --static`. DESTDIR stages the same files
# under another root without changing what the pkg-config files say.
# Usage: install.sh BUILD_DIR SOURCE_DIR
build=$1
src=$2
[ -f "$build/CMakeCache.txt" ] && [ -f "$src/include/uhmm.h" ] ||
	{ echo "usage: $0 path/to/build path/to/source"; exit 1; }
build=$(cd "$build" && pwd) && src=$(cd "$src" && pwd) || exit 1
for tool in cmake pkg-config cc make timeout; do
	command -v $tool >/dev/null 2>&1 ||
		{ echo "SKIP: $tool is not installed"; exit 77; }
done
. "$(dirname "$0")/cli.sh"

# Nothing from the environment may point a compiler at the source tree.
unset CPATH C_INCLUDE_PATH LIBRARY_PATH PKG_CONFIG_LIBDIR

prefix=$tmp/prefix
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1 ||
	{ cat "$tmp/install.log"; fail "cmake --install failed"; exit 1; }

# --- what is installed ----------------------------------------------------
pcdir=$(dirname "$(find "$prefix" -name uhmm.pc | head -n 1)")
[ -f "$pcdir/uhmm.pc" ] || { fail "no uhmm.pc installed"; exit 1; }
[ -f "$pcdir/uhmm-uring.pc" ] || fail "no uhmm-uring.pc installed"
export PKG_CONFIG_PATH="$pcdir"
for pc in uhmm uhmm-uring; do
	v=$(pkg-config --variable=prefix $pc)
	[ "$v" = "$prefix" ] || fail "$pc.pc: prefix=$v, not $prefix"
	pkg-config --exists --print-errors $pc || fail "$pc.pc is not usable"
done
libdir=$(pkg-config --variable=libdir uhmm)
incdir=$(pkg-config --variable=includedir uhmm)
case "$libdir$incdir" in
"$prefix"/*"$prefix"/*) ;;
*) fail "libdir $libdir or includedir $incdir is not under $prefix" ;;
esac
for f in libuhmm.so libuhmm.a libuhmm_uring.so libuhmm_uring.a \
	libuhmm_hooks.so; do
	[ -e "$libdir/$f" ] || fail "$libdir/$f not installed"
done
for h in uhmm.h uhmm_uring.h; do
	[ -f "$incdir/$h" ] || fail "$incdir/$h not installed"
	cmp -s "$incdir/$h" "$src/include/$h" || fail "$h differs from source"
done
pkg-config --static --libs uhmm | grep -q -- -lpthread ||
	fail "pkg-config --static --libs uhmm lacks -lpthread"
case $(pkg-config --libs uhmm-uring) in
*-luhmm_uring*-luhmm*-luring*) ;;
*) fail "uhmm-uring libs: $(pkg-config --libs uhmm-uring)" ;;
esac
for f in $(pkg-config --cflags --libs uhmm-uring); do
	case $f in
	*"$src"* | *"$build"*) fail "pkg-config points into the tree: $f" ;;
	esac
done

# Every man page, under share/man/manN, and the links resolve there.
mandir=$(dirname "$(find "$prefix" -name uhmm.7 | head -n 1)")
mandir=${mandir%/man7}
for page in "$src"/man/*.[0-9]; do
	base=$(basename "$page")
	[ -f "$mandir/man${base##*.}/$base" ] ||
		fail "man page $base not installed in $mandir/man${base##*.}"
done
if command -v man >/dev/null 2>&1; then
	for name in uhmm_rcache_put uhmm_uring_rcache_ops uhmm_munmap; do
		out=$(MANPATH="$mandir" LC_ALL=C.UTF-8 MANWIDTH=80 \
			man 3 $name 2>&1 >/dev/null)
		[ -z "$out" ] || fail "installed man 3 $name: $out"
	done
	MANPATH="$mandir" man -w 1 uhmm >/dev/null 2>&1 ||
		fail "man 1 uhmm not found in $mandir"
fi

# The command runs from the prefix.
"$prefix/bin/uhmm" probe >"$tmp/probe.out" 2>&1 ||
	{ cat "$tmp/probe.out"; fail "installed uhmm probe failed"; }
# uhmm trace finds its preload library by the installed layout, under this
# prefix, not the one configured (and not the build tree's copy); it and
# the bench programs find the installed libuhmm by their RPATH, with no
# LD_LIBRARY_PATH and before ldconfig knows the prefix.
for b in "$prefix"/libexec/uhmm/bench-* "$prefix"/lib*/uhmm/libuhmm_trace.so \
	"$prefix"/lib/*/uhmm/libuhmm_trace.so; do
	[ -e "$b" ] || continue
	ldd "$b" | grep -q 'libuhmm.so.0 => '"$prefix"/ ||
		fail "installed $b does not find the installed libuhmm: $(ldd "$b" | grep uhmm)"
done
timeout 120 "$prefix/bin/uhmm" trace -o "$tmp/trace.out" \
	-- /bin/true >"$tmp/trace.err" 2>&1 ||
	{ cat "$tmp/trace.err"; fail "installed uhmm trace -- /bin/true failed"; }
grep -q "$prefix/.*libuhmm_trace.so" "$tmp/trace.out" ||
	{ cat "$tmp/trace.out"; fail "installed uhmm trace did not use the installed library"; }
# bench-fabric preloads the fake verbs device installed beside it.
fab=$prefix/libexec/uhmm/bench-fabric
if [ -x "$fab" ]; then
	UHMM_BENCH_SCALE=0.01 LD_DEBUG=libs timeout 300 "$fab" \
		>"$tmp/fabric.out" 2>&1 ||
		{ tail -20 "$tmp/fabric.out"; fail "installed bench-fabric failed"; }
	grep -q "init: $prefix/libexec/uhmm/fake-verbs.so" "$tmp/fabric.out" ||
		fail "installed bench-fabric did not preload the installed fake-verbs.so"
fi

# --- the examples, from the installed files only --------------------------
cp "$src"/examples/*.c "$src"/examples/Makefile "$tmp/" ||
	{ fail "cannot copy examples/"; exit 1; }
make -C "$tmp" CFLAGS="-O2 -Wall -Wextra -Werror" all static \
	>"$tmp/make.log" 2>&1 ||
	{ cat "$tmp/make.log"; fail "examples do not build"; }
# Which uhmm headers the compiler read: the installed ones.
for ex in notifier rcache-device uring; do
	pc=uhmm
	[ $ex = uring ] && pc=uhmm-uring
	cc -M $(pkg-config --cflags $pc) "$tmp/$ex.c" >"$tmp/deps" 2>&1 ||
		fail "cc -M $ex.c"
	grep -q "$incdir/uhmm.h" "$tmp/deps" ||
		fail "$ex.c did not use $incdir/uhmm.h"
	grep -q "$src" "$tmp/deps" && fail "$ex.c read a header of the tree"
done

# Run each under a timeout: they use userfaultfd, and a bug that leaves a
# thread blocked in munmap() must fail, not hang. 77: the machine cannot
# (no userfaultfd or io_uring), said by the example itself.
ran=0
for ex in notifier rcache-device uring notifier-static; do
	[ -x "$tmp/$ex" ] || continue
	if [ $ex != notifier-static ]; then
		LD_LIBRARY_PATH="$libdir" ldd "$tmp/$ex" |
			grep 'libuhmm' | grep -qv "$libdir" &&
			fail "$ex does not load the installed libuhmm"
	fi
	LD_LIBRARY_PATH="$libdir" timeout 120 "$tmp/$ex" >"$tmp/$ex.out" 2>&1
	rc=$?
	case $rc in
	0) ran=$((ran + 1)) ;;
	77) echo "SKIP $ex: $(cat "$tmp/$ex.out")" ;;
	124) fail "$ex timed out" ;;
	*) cat "$tmp/$ex.out"; fail "$ex exited $rc" ;;
	esac
done
[ -x "$tmp/notifier-static" ] && ldd "$tmp/notifier-static" >/dev/null 2>&1 &&
	fail "notifier-static is dynamically linked"

# uhmm-fabric.pc, when libfabric was there: a program links against it.
if [ -f "$pcdir/uhmm-fabric.pc" ]; then
	cat >"$tmp/fabric.c" <<'EOF'
#include <errno.h>
#include <uhmm_fabric.h>

int main(void)
{
	struct uhmm_fabric_stats st;

	/* Nothing imported: -ENOENT, and no libfabric call. */
	return uhmm_fabric_stats(&st) == -ENOENT ? 0 : 1;
}
EOF
	if cc -Wall -Wextra -Werror $(pkg-config --cflags uhmm-fabric) \
		"$tmp/fabric.c" -o "$tmp/fabric" \
		$(pkg-config --libs uhmm-fabric) 2>"$tmp/fabric.log"; then
		LD_LIBRARY_PATH="$libdir" timeout 60 "$tmp/fabric" ||
			fail "a uhmm-fabric program failed"
	else
		cat "$tmp/fabric.log"
		fail "a uhmm-fabric program does not build"
	fi
fi

# --- DESTDIR: staged under a root, the files still name the prefix --------
DESTDIR="$tmp/stage" cmake --install "$build" --prefix /opt/uhmm \
	>"$tmp/stage.log" 2>&1 ||
	{ cat "$tmp/stage.log"; fail "DESTDIR install failed"; }
staged=$(find "$tmp/stage/opt/uhmm" -name uhmm.pc 2>/dev/null | head -n 1)
if [ -z "$staged" ]; then
	fail "DESTDIR install put no uhmm.pc under $tmp/stage/opt/uhmm"
else
	grep -qx 'prefix=/opt/uhmm' "$staged" ||
		fail "staged uhmm.pc: $(grep '^prefix=' "$staged")"
fi
[ -x "$tmp/stage/opt/uhmm/bin/uhmm" ] || fail "DESTDIR: no bin/uhmm"

finish "PASS ($ran example runs)"
