# Thin wrapper around CMake + Ninja.  The real build is CMakeLists.txt.
#   make / make build   build/       (RelWithDebInfo)
#   make run            build, then $(RUN_CMD)
#   make test           build/ and build-asan/ (ASan+UBSan, Debug), ctest in
#                       both, then the fuzzers briefly
#   make install        into $(PREFIX)
#   make bench          the benchmarks' peers (bench/deps.sh installs them as
#                       root on Debian, else says what to install), build, then
#                       bench/run.sh, run_chat.sh, run_portfwd.sh and
#                       run_socks5d.sh
#   make bench-quick    the same, QUICK=1: one round of short windows, about
#                       3 minutes (also: make bench QUICK=1)
#   make fuzz           build-fuzz/ with clang, each fuzz_* for $(FUZZ_SECONDS) s
#   make clean
RUN_CMD ?= build/examples/echo_server
PREFIX ?= /usr/local
FUZZ_SECONDS ?= 20
# Tests run side by side (every test takes kernel-chosen ports): one per core.
CTEST_JOBS ?= $(shell nproc 2>/dev/null || echo 2)

SHELL := /bin/bash
CMAKE_GEN := -G Ninja

export ASAN_OPTIONS ?= detect_leaks=1
export UBSAN_OPTIONS ?= print_stacktrace=1:halt_on_error=1

.PHONY: all build asan run test install bench bench-quick fuzz clean

all: build

# Configure once; after that `cmake --build` re-runs CMake by itself when a
# CMakeLists.txt or a globbed directory changes.
build/build.ninja:
	cmake -S . -B build $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build-asan/build.ninja:
	cmake -S . -B build-asan $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Debug -DAC_SANITIZE=ON

build-fuzz/build.ninja:
	CC=clang cmake -S . -B build-fuzz $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAC_FUZZ=ON

build: build/build.ninja
	cmake --build build

asan: build-asan/build.ninja
	cmake --build build-asan

run: build
	@[ -x "$(firstword $(RUN_CMD))" ] || \
	    { echo "make run: $(firstword $(RUN_CMD)) was not built" >&2; exit 1; }
	$(RUN_CMD)

# Both trees are tested even if the first fails, then the fuzzers; any
# failure fails the target.  scripts/test-summary.sh ends with the line
# "summary: N passed, N failed" that CI reads.
TEST_LOGS := build/ctest.log build-asan/ctest.log build-fuzz/fuzz.log
test: build asan
	@set -o pipefail; rc=0; rm -f $(TEST_LOGS); mkdir -p build-fuzz; \
	ctest --test-dir build --output-on-failure -j$(CTEST_JOBS) 2>&1 | tee build/ctest.log || rc=1; \
	ctest --test-dir build-asan --output-on-failure -j$(CTEST_JOBS) 2>&1 \
	    | tee build-asan/ctest.log || rc=1; \
	$(MAKE) --no-print-directory fuzz 2>&1 | tee build-fuzz/fuzz.log || rc=1; \
	bash scripts/test-summary.sh $(TEST_LOGS); \
	exit $$rc

install: build
	cmake --install build --prefix $(PREFIX)

# QUICK=1 (bench-quick): bench/lib.sh's quick mode, for a developer's
# before/after check; the full run is what docs/BENCHMARKS*.md quote.
QUICK ?=
BENCH_ENV = BUILD=$(CURDIR)/build QUICK=$(QUICK)
bench:
	@BUILD=$(CURDIR)/build bash bench/deps.sh
	@$(MAKE) --no-print-directory build
	@$(BENCH_ENV) bash bench/run.sh
	@$(BENCH_ENV) bash bench/run_chat.sh
	@$(BENCH_ENV) bash bench/run_portfwd.sh
	@$(BENCH_ENV) bash bench/run_socks5d.sh

bench-quick:
	@$(MAKE) --no-print-directory bench QUICK=1

# Each fuzzer gets a scratch corpus in build-fuzz/ (libFuzzer writes to its
# first corpus dir) seeded from fuzz/corpus/<name>/ and uses fuzz/<name>.dict
# when those exist; crash files go to build-fuzz/artifacts/.
fuzz:
	@$(MAKE) --no-print-directory build-fuzz/build.ninja
	cmake --build build-fuzz --target fuzzers
	@pass=0; fail=0; mkdir -p build-fuzz/artifacts; \
	for bin in build-fuzz/fuzz/fuzz_*; do \
	    [ -f "$$bin" ] && [ -x "$$bin" ] || continue; \
	    name=$$(basename "$$bin"); corpus=build-fuzz/corpus/$$name; mkdir -p "$$corpus"; \
	    args=(-max_total_time=$(FUZZ_SECONDS) -timeout=10 -print_final_stats=0 \
	          -artifact_prefix=build-fuzz/artifacts/$$name-); \
	    [ -f fuzz/$$name.dict ] && args+=(-dict=fuzz/$$name.dict); \
	    seeds=(); [ -d fuzz/corpus/$$name ] && seeds=(fuzz/corpus/$$name); \
	    echo "== $$name ($(FUZZ_SECONDS) s)"; \
	    if "$$bin" "$${args[@]}" "$$corpus" "$${seeds[@]}" >build-fuzz/$$name.log 2>&1; then \
	        tail -n 1 build-fuzz/$$name.log; pass=$$((pass + 1)); \
	    else \
	        tail -n 60 build-fuzz/$$name.log; echo "FAILED $$name: build-fuzz/$$name.log"; \
	        fail=$$((fail + 1)); \
	    fi; \
	done; \
	echo "fuzz: $$pass passed, $$fail failed"; \
	[ $$fail -eq 0 ]

clean:
	rm -rf build build-asan build-fuzz
