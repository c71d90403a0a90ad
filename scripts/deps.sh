#!/bin/sh
# Install what uhmm's build needs and a fresh Debian machine lacks.
# Idempotent: installs nothing when everything is there.
#   scripts/deps.sh build   the libraries, the uhmm command, make run/install
#   scripts/deps.sh bench   and what the benchmarks compare against and plot
#   scripts/deps.sh [all]   and what the whole test suite needs (make check)
set -eu

# build: liburing-dev, the io_uring device (libuhmm_uring, uhmm demo).
BUILD="cmake gcc make binutils liburing-dev"
# bench: libucx-dev, the peer that bench/rcache.c and bench/monitors.c
# compare against; libfabric-dev: libuhmm_fabric (uhmm as libfabric's memory
# monitor), and with libibverbs-dev and librdmacm-dev (the headers of the
# libraries whose functions tests/fabric/fake-verbs.c fakes) the tests and
# bench-fabric that run libfabric's real MR cache without RDMA hardware;
# gnuplot-nox: the plots of `uhmm bench --plot` (gnuplot without X11: PNG
# files only), which its test (tests/cli-bench.sh) checks.
BENCH="$BUILD libucx-dev libfabric-dev libibverbs-dev librdmacm-dev gnuplot-nox"
# all: spin, the protocol model (models/); clang and libclang-rt-14-dev
# (libFuzzer), the fuzzers (fuzz/).
ALL="$BENCH spin clang libclang-rt-14-dev"

case "${1:-all}" in
build) PACKAGES=$BUILD ;;
bench) PACKAGES=$BENCH ;;
all) PACKAGES=$ALL ;;
*) echo "usage: $0 [build|bench|all]" >&2; exit 2 ;;
esac

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
