# thaw: `make run` serves examples/hello, `make test` runs every test.
# Both install what is missing first (Debian packages, via scripts/install-deps.sh).

JOBS ?= $(shell nproc)
PY := /usr/bin/python3
PORT ?= 8787

.PHONY: all deps build asan run test test-unit test-python test-e2e test-e2e-asan test-fidelity fuzz bench clean

all: build

deps:
	@bash scripts/install-deps.sh

build: deps
	@cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build build -j$(JOBS)

asan: deps
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DTHAW_SANITIZE=ON >/dev/null
	@cmake --build build-asan -j$(JOBS)

run: build
	./build/thaw dev examples/hello --port $(PORT)

# Sanitizer settings for the ASan/UBSan build: libpython's interned objects
# live until exit by design, so its allocations are not leaks.
SAN_ENV := ASAN_OPTIONS=abort_on_error=1:detect_leaks=1 \
	LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

test: build asan
	$(MAKE) --no-print-directory test-unit test-python test-e2e test-e2e-asan test-fidelity fuzz

test-unit:
	ctest --test-dir build --output-on-failure
	$(SAN_ENV) ctest --test-dir build-asan --output-on-failure

test-python:
	$(PY) -m pytest tests/python -q -p no:cacheprovider

test-e2e:
	THAW_BIN=$(CURDIR)/build/thaw $(PY) -m pytest tests/e2e -q -p no:cacheprovider

test-e2e-asan:
	$(SAN_ENV) THAW_BIN=$(CURDIR)/build-asan/thaw $(PY) -m pytest tests/e2e -q -p no:cacheprovider -m "not slow"

# Popular packages survive a snapshot (tests/fidelity/cases.py); the release build only: the
# sanitizer build never snapshots.
test-fidelity:
	THAW_BIN=$(CURDIR)/build/thaw $(PY) -m pytest tests/fidelity -q -p no:cacheprovider

fuzz:
	FUZZ_SECONDS=$${FUZZ_SECONDS:-20} bash tests/fuzz/run.sh

bench: build
	bash bench/throughput/run.sh

clean:
	rm -rf build build-asan build-fuzz
