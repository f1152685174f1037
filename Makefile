# wskit: `make run` starts the demo, `make test` installs what the tests need and runs them.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# Two install stamps. `make run` needs the package alone; `make test` the package with the
# extras the tests use plus the `test` dependency group (pyproject.toml), a superset, so it
# marks `run` as installed too. A venv that `make run` made is completed by `make test`.
RUN_STAMP  := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test
# `pip install --group` (PEP 735 dependency groups) needs pip >= 25.1
PIP_MIN := pip>=25.1

.DEFAULT_GOAL := help
.PHONY: help run test lint typecheck unit contract install system-deps bun bench mutation clean

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "wskit needs Python >= 3.11 (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(RUN_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q '$(PIP_MIN)'
	$(PY) -m pip install -q -e .
	@touch $@

$(TEST_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q '$(PIP_MIN)'
	$(PY) -m pip install -q -e '.[fast,redis]' --group test
	@touch $@ $(RUN_STAMP)

## help: this list
help:
	@awk '/^## [a-z-]+:/ { name = $$2; sub(/:$$/, "", name); sub(/^## [a-z-]+: /, ""); printf "  %-12s %s\n", name, $$0; next } \
	     /^##   / { sub(/^## +/, ""); printf "  %-12s %s\n", "", $$0 }' $(MAKEFILE_LIST)

## install: the development install into .venv (the package, its fast and redis extras, the test group)
install: $(TEST_STAMP)

## run: the chat demo on http://127.0.0.1:8000 (in-memory broker, no services needed);
##   installs the package alone into .venv (aiohttp, pydantic), none of the development tools
run: $(RUN_STAMP)
	$(PY) -m examples.chat

## lint: ruff (lint + format check)
lint: $(TEST_STAMP)
	$(PY) -m ruff check src tests examples bench
	$(PY) -m ruff format --check src tests examples bench

## typecheck: mypy --strict on the package
typecheck: $(TEST_STAMP)
	$(PY) -m mypy

## system-deps: redis-server, chromium and nginx from Debian's packages when missing
system-deps:
	@bash scripts/system-deps.sh

## bun: Bun from npm, which the native load generator (bench/loadgen_bun.ts) and its test run on
bun:
	@bash bench/setup_peers.sh --bun-only

## unit: the pytest suite (tests/), with the system programs and Bun it drives; two workers
## (pytest-xdist, a test file stays on one worker): most tests wait on sockets and processes,
## so two halve the wall time (~10 min -> ~6) on two cores. PYTEST_WORKERS=0 runs one process
PYTEST_WORKERS ?= 2
unit: $(TEST_STAMP) system-deps bun
	@bash scripts/npm-deps.sh
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile

## contract: the shared API.md example served by serve(), checked over a real socket
contract: $(TEST_STAMP)
	@if [ -f ../shared/contract/check.py ]; then CONTRACT_QUIET=1 $(PY) ../shared/contract/check.py $(PY); \
	else echo "contract: ../shared/contract/check.py not found, skipped"; fi

## test: everything CI runs (lint, typecheck, unit, contract)
test: lint typecheck unit contract

## bench: the benchmark suite against every peer (minutes; writes bench/results/)
bench: $(TEST_STAMP) system-deps
	$(PY) -m pip install -q --group bench
	PY=$(PY) bash bench/setup_peers.sh
	$(PY) bench/run.py --loadgen bun

## mutation: mutation testing (mutmut) of pubsub/, protocol (history step), hub, connection, inflight, ratelimit, admission;
##   prints killed/total per module (up to ~30 min; not part of test). MUTATION_ARGS="hub --show"
mutation: $(TEST_STAMP)
	@$(PY) -c 'import mutmut' 2>/dev/null || $(PY) -m pip install -q --group mutation
	nice -n 10 $(PY) scripts/mutation.py $(MUTATION_ARGS)

## clean: remove .venv, the tool caches and build outputs (build/, dist/)
clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist
