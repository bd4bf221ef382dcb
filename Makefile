# The two entry points of the README: `make run` and `make test`. Everything else is a step of them.
SHELL := /bin/bash
JOBS ?= $(shell nproc)
AETHER := build/release/aether
# ccache keys on relative paths, so a fresh clone in another folder (CI) reuses earlier builds.
export CCACHE_BASEDIR := $(CURDIR)
export CCACHE_NOHASHDIR := true

.PHONY: run test bootstrap build build-asan unit unit-tsan integration integration-asan integration-tsan bench format clean

run: build
	@echo "Aether all-in-one: data under ./data."
	@echo "First admin (password on stdin):  $(AETHER) user create --email you@example.com --name You --role admin"
	$(AETHER) serve --listen 127.0.0.1:8080 --data-dir ./data

test: build build-asan unit unit-tsan integration integration-asan integration-tsan

bootstrap:
	@scripts/bootstrap

build: bootstrap
	@cmake --preset release >/dev/null
	@cmake --build --preset release -j $(JOBS)

build-asan: bootstrap
	@cmake --preset asan -DAETHER_BUILD_BENCH=OFF >/dev/null
	@cmake --build --preset asan -j $(JOBS)

# Unit tests run under AddressSanitizer + UBSan.
unit: build-asan
	@ctest --preset asan -j $(JOBS)

# The suites whose code runs on several threads at once, again under ThreadSanitizer: the
# blocking pool, the IO thread's busy polling, the SQL pools and committer (SQLite and
# PostgreSQL), the bus and its outbox, the HTTP reads that hand readiness to the reactor, and
# what the IO threads share: the local rate counter, the verified-token cache, metrics, the log,
# trace ids and SharedSlot (the gateway's configuration).
# Suppressions: tests/tsan-suppressions.txt.
TSAN_TARGETS := platform_runtime_test platform_sql_test platform_bus_test \
  platform_http_draining_read_test platform_cache_test platform_auth_test platform_telemetry_test \
  platform_shared_slot_test
unit-tsan: bootstrap
	@cmake --preset tsan -DAETHER_BUILD_BENCH=OFF >/dev/null
	@cmake --build --preset tsan -j $(JOBS) --target $(TSAN_TARGETS)
	@ctest --preset tsan -j $(JOBS) \
	  -R '^(platform_sql_test|platform_bus_test|BlockingPool\.|BusyPollingTest\.|DrainingRead(Stress)?Test\.|LocalRateCounter\.|JwtCache\.|Metrics\.|Log\.|Trace\.|SharedSlotTest\.)'

# Integration tests drive the release binary over HTTP, on SQLite and PostgreSQL; the
# security suite runs again all-in-one, behind the gateway's edge, where it must behave the same.
# AETHER_EXPECT_ALLOCATOR: the malloc each build must report (CMakeLists.txt, AETHER_ALLOCATOR).
integration: build
	@AETHER_BIN=$(AETHER) AETHER_EXPECT_ALLOCATOR=mimalloc tests/run-integration
	@AETHER_BIN=$(AETHER) AETHER_EXPECT_ALLOCATOR=mimalloc AETHER_TEST_TARGET=all tests/run-integration \
	  -k "not gateway and not upstream_server and not tasks and not bus"

# The same suite against the ASan/UBSan binary: memory errors in the server fail it.
integration-asan: build-asan
	@ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1 \
	  AETHER_BIN=build/asan/aether AETHER_EXPECT_ALLOCATOR=system tests/run-integration

# The gateway's suites (and the attacks on the edge) against the ThreadSanitizer binary, with two
# IO threads (as the suites run every target): a data race between them fails the run
# (tests/run-integration-tsan).
integration-tsan: bootstrap
	@cmake --preset tsan -DAETHER_BUILD_BENCH=OFF >/dev/null
	@cmake --build --preset tsan -j $(JOBS) --target aether
	@tests/run-integration-tsan -k "gateway or attacks"

bench: build
	@bench/run-all

format:
	@clang-format -i $$(git ls-files 'src/*.cpp' 'src/*.h')

clean:
	rm -rf build
