# wskit: `make run` starts the demo, `make test` installs what the tests need and runs them.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck unit contract install system-deps bun bench mutation clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "wskit needs Python >= 3.11 (set PYTHON=...)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,fast,redis]'
	@touch $(STAMP)

install: $(STAMP)

## run: the chat demo on http://127.0.0.1:8000 (in-memory broker, no services needed)
run: $(STAMP)
	$(PY) -m examples.chat

## lint: ruff (lint + format check)
lint: $(STAMP)
	$(PY) -m ruff check src tests examples bench
	$(PY) -m ruff format --check src tests examples bench

## typecheck: mypy --strict on the package
typecheck: $(STAMP)
	$(PY) -m mypy

## system-deps: redis-server and chromium from Debian's packages when missing
system-deps:
	@bash scripts/system-deps.sh

## bun: Bun from npm, which the native load generator (bench/loadgen_bun.ts) and its test run on
bun:
	@bash bench/setup_peers.sh --bun-only

unit: $(STAMP) system-deps bun
	$(PY) -m pytest

## contract: the shared API.md example served by serve(), checked over a real socket
contract: $(STAMP)
	@if [ -f ../shared/contract/check.py ]; then CONTRACT_QUIET=1 $(PY) ../shared/contract/check.py $(PY); \
	else echo "contract: ../shared/contract/check.py not found, skipped"; fi

## test: everything CI runs
test: lint typecheck unit contract

## bench: the benchmark suite against every peer (minutes; writes bench/results/)
bench: $(STAMP) system-deps
	PY=$(PY) bash bench/setup_peers.sh
	$(PY) bench/run.py --loadgen bun

## mutation: mutation testing (mutmut) of pubsub/, protocol (history step), hub, connection, inflight, ratelimit, admission;
##   prints killed/total per module (up to ~30 min; not part of test). MUTATION_ARGS="hub --show"
mutation: $(STAMP)
	@$(PY) -c 'import mutmut' 2>/dev/null || $(PY) -m pip install -q -e '.[mutation]'
	nice -n 10 $(PY) scripts/mutation.py $(MUTATION_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
