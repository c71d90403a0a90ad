# Entry points; CMake does the building. See README.md.
#   make bench   build (Release) and run the benchmarks   (the main job)
#   make check   build and run the whole test suite: Release, then
#                ASan+UBSan (Debug) and TSan (the concurrency tests)
JOBS ?= $(shell nproc)
CMAKE_BUILD = cmake --build $(1) -j $(JOBS)

.PHONY: all deps release check check-release check-asan check-tsan bench clean

all: release

deps:
	@sh scripts/deps.sh

release: deps
	cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release >/dev/null
	$(call CMAKE_BUILD,build/release)

check: check-release check-asan check-tsan

check-release: release
	cd build/release && ctest --output-on-failure

check-asan: deps
	cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=Debug -DUHMM_SANITIZE=address >/dev/null
	$(call CMAKE_BUILD,build/asan)
	cd build/asan && ctest --output-on-failure

check-tsan: deps
	cmake -S . -B build/tsan -DCMAKE_BUILD_TYPE=Debug -DUHMM_SANITIZE=thread >/dev/null
	$(call CMAKE_BUILD,build/tsan)
	cd build/tsan && ctest --output-on-failure -L concurrency

bench: release
	@for b in build/release/bench-*; do echo "== $$b"; $$b || exit 1; done

clean:
	rm -rf build
