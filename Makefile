# Two commands on a fresh machine: `make test` and `make demo`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: test lint typecheck unit js-sdk demo schema tables bench bench-load bench-iothub fuzz clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: $(STAMP) lint typecheck js-sdk unit

lint: $(STAMP)
	$(BIN)/ruff check reconciler tests tools bench
	$(BIN)/ruff format --check reconciler tests tools bench
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest

# The official JavaScript SDK for tests/emulator/js_sdk, from its package-lock.json: installed
# once (again only when the lock changes). Without npm its test skips (fails under CI=true).
JS_SDK := tests/emulator/js_sdk
js-sdk:
	@if [ -f $(JS_SDK)/node_modules/.installed ] && \
	    [ $(JS_SDK)/node_modules/.installed -nt $(JS_SDK)/package-lock.json ]; then :; \
	elif command -v npm >/dev/null 2>&1; then \
	    npm ci --prefix $(JS_SDK) --no-audit --no-fund --loglevel=error && \
	    touch $(JS_SDK)/node_modules/.installed; \
	else echo "npm not found: the JavaScript SDK checks will be skipped"; fi

demo: $(STAMP)
	$(BIN)/python tools/demo.py

schema: $(STAMP)
	$(BIN)/reconciler schema

# Regenerate the reference tables from ../shared/reference (developers only; output is committed).
tables: $(STAMP)
	$(BIN)/python tools/gen_tables.py
	$(BIN)/python tools/gen_iothub_tables.py

# `make bench DEVICES=10000`: plan/apply against the served emulator (JSON); the manifest
# load benchmark is `make bench-load LOAD_DEVICES=N`.
DEVICES ?= 1000
LOAD_DEVICES ?= 100000
bench: $(STAMP)
	$(BIN)/python bench/bench_reconcile.py --devices $(DEVICES)

# `make bench-iothub IOTHUB_DEVICES=10000 IOTHUB_UNITS=100`: the IoT Hub provider against the
# served IoT Hub emulator (S1 throttles x units, 20 ms latency), JSON.
IOTHUB_DEVICES ?= 10000
IOTHUB_UNITS ?= 100
bench-iothub: $(STAMP)
	$(BIN)/python bench/bench_iothub.py --devices $(IOTHUB_DEVICES) --units $(IOTHUB_UNITS)

bench-load: $(STAMP)
	$(BIN)/python bench/bench_load.py --devices $(LOAD_DEVICES)

# `make fuzz FUZZ_CASES=10000`: the large manifest fuzz campaign (JSON totals; exit 1 on a
# failing case). `make test` runs a few hundred of the same cases.
FUZZ_CASES ?= 10000
fuzz: $(STAMP)
	$(BIN)/python bench/fuzz_manifests.py --cases $(FUZZ_CASES)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build *.egg-info
