#!/bin/sh
# Install what uhmm's build needs and a fresh Debian machine lacks.
# Idempotent: installs nothing when everything is there.
set -eu

# Debian packages the build, tests and benchmarks need beyond gcc/make/cmake.
# liburing-dev: the io_uring device; libucx-dev: the peer that bench/rcache.c
# compares against; spin: the protocol model (models/); clang and
# libclang-rt-14-dev (libFuzzer): the fuzzers (fuzz/); libfabric-dev:
# libuhmm_fabric (uhmm as libfabric's memory monitor), and with
# libibverbs-dev and librdmacm-dev (the headers of the libraries whose
# functions tests/fabric/fake-verbs.c fakes) the tests and bench-fabric that
# run libfabric's real MR cache without RDMA hardware. gnuplot-nox: the
# plots of `uhmm bench --plot` (gnuplot without X11: PNG files only),
# which its test (tests/cli-bench.sh) checks.
PACKAGES="cmake gcc make binutils liburing-dev libucx-dev spin clang
libclang-rt-14-dev libfabric-dev libibverbs-dev librdmacm-dev gnuplot-nox"

missing=""
for p in $PACKAGES; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "uhmm: missing Debian packages:$missing (run as root, or install them)" >&2
	exit 1
fi
echo "uhmm: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq $missing </dev/null
