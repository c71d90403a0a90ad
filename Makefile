# Entry points; CMake does the building. See README.md.
#   make run     build (Release) and run the main job: uhmm demo
#   make check   build and run the whole test suite: Release (with the
#                spin model and a short stress run), ASan+UBSan (Debug
#                build), TSan (all but the fork tests), then the fuzzers
#                (clang, a bounded run each)
#   make bench   build (Release) and run the benchmarks: `uhmm bench`, one
#                table of figures against their baselines (about 5 min);
#                BENCH_ARGS="--plot DIR" also draws plots, "--json" for JSON
#   make install build (Release) and install the libraries (shared and
#                static), headers, pkg-config files, the uhmm command and
#                the man pages under PREFIX (/usr/local), staged under
#                DESTDIR if set
JOBS ?= $(shell nproc)
# Long tests run a shorter pass under the sanitizers (they say so).
SANITIZER_SCALE ?= 0.2
PREFIX ?= /usr/local
DESTDIR ?=

.PHONY: all deps deps-build deps-bench release run check check-release \
	check-asan check-tsan check-fuzz bench install clean

all: release

# The Debian packages each goal needs (scripts/deps.sh): the build alone
# for run and install, more for bench, everything for check - installed
# before the build is configured, so that it finds them.
deps:
	@sh scripts/deps.sh all
deps-build:
	@sh scripts/deps.sh build
deps-bench:
	@sh scripts/deps.sh bench

release: deps-build
	cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DUHMM_WERROR=ON >/dev/null
	cmake --build build/release -j $(JOBS)

run: release
	build/release/uhmm demo

check: check-release check-asan check-tsan check-fuzz

check-release: deps release
	cd build/release && ctest --output-on-failure -j $(JOBS)

check-asan: deps
	cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=Debug -DUHMM_SANITIZE=address -DUHMM_WERROR=ON >/dev/null
	cmake --build build/asan -j $(JOBS)
	cd build/asan && UHMM_TEST_SCALE=$(SANITIZER_SCALE) ctest --output-on-failure -j $(JOBS) -LE model

check-tsan: deps
	cmake -S . -B build/tsan -DCMAKE_BUILD_TYPE=Debug -DUHMM_SANITIZE=thread -DUHMM_WERROR=ON >/dev/null
	cmake --build build/tsan -j $(JOBS)
	cd build/tsan && UHMM_TEST_SCALE=$(SANITIZER_SCALE) ctest --output-on-failure -j $(JOBS) -LE 'fork|model'

# The fuzzers need clang (libFuzzer): their own build, only their targets.
# FUZZ_SECONDS bounds each fuzzer's run (the regression inputs run first).
FUZZ_SECONDS ?= 60
check-fuzz: deps
	CC=clang cmake -S . -B build/fuzz -DCMAKE_BUILD_TYPE=Debug -DUHMM_FUZZ=ON \
		-DUHMM_FUZZ_SECONDS=$(FUZZ_SECONDS) -DUHMM_WERROR=ON >/dev/null
	cmake --build build/fuzz -j $(JOBS) --target fuzz-api fuzz-itree
	cd build/fuzz && ctest --output-on-failure -L fuzz

bench: deps-bench release
	build/release/uhmm bench $(BENCH_ARGS)

# The prefix is given at install time, not configure time, so that
# build/release stays the one Release build; the pkg-config files are
# written then too, with this prefix (pkgconfig/install-pc.cmake).
install: release
	DESTDIR="$(DESTDIR)" cmake --install build/release --prefix "$(PREFIX)"

clean:
	rm -rf build
