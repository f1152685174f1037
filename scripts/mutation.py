"""Mutation testing of the modules whose bugs lose messages or hold resources: `make mutation`.

Runs mutmut 3 once per module, each in a throwaway copy of the last commit under
``.mutation/<module>/`` (mutmut mutates a further copy of its own inside, ``mutants/``):
``src/`` is never touched, so other work in the same tree never sees a mutant, and edits in
progress there never break a run (``--worktree`` tests the files as they are instead). Each module
is tested by the FAST tests that cover it (``MODULES`` below); mutmut then runs, for each
mutant, only the tests that call the mutated function, stops at the first failure, and
kills a mutant that runs past its time limit (counted as killed: a hang is a detected
change). Prints killed / total per module and overall, and the surviving mutants' names
(``--show`` prints their diffs; ``cd .mutation/<module> && mutmut show <name>`` shows one).

Usage: ``python scripts/mutation.py [module ...] [--jobs N] [--budget S] [--show] [--worktree]``;
modules are the keys of ``MODULES`` (default: all). Exit status 0 whatever the score: this
measures, it does not gate.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".mutation"

#: module -> (the source file mutated, a glob for a package; the fast tests that cover it). Only fast in-memory or
#: local-socket tests: no subprocess suites (typing, layering, scale), no fuzzing.
MODULES: dict[str, tuple[str, list[str]]] = {
    "pubsub/memory": (
        "src/wskit/pubsub/memory.py",
        [
            "tests/unit/test_pubsub_memory.py",
            "tests/brokers/test_broker_conformance.py::TestMemoryBroker",
            "tests/brokers/test_hub_gaps.py",
            "tests/unit/test_hub_gap_of_one.py",
            "tests/unit/test_resubscribe_position.py",
            "tests/protocol/test_history.py",
            "tests/protocol/test_pubsub.py",
        ],
    ),
    "pubsub/broker": (
        "src/wskit/pubsub/broker.py",
        [
            "tests/unit/test_pubsub_broker.py",
            "tests/brokers/test_publication.py",
            "tests/brokers/test_broker_conformance.py::TestMemoryBroker",
            "tests/brokers/test_hub_gaps.py",
            "tests/unit/test_hub_gap_of_one.py",
            "tests/protocol/test_history.py",
            "tests/protocol/test_pubsub.py",
        ],
    ),
    "protocol": (
        # the history sequencing rule (step: next, duplicate, gap) lives here since 755e09d
        "src/wskit/protocol.py",
        [
            "tests/unit/test_position.py",
            "tests/unit/test_protocol_helpers.py",
            "tests/unit/test_hub_gap_of_one.py",
            "tests/brokers/test_hub_gaps.py",
            "tests/unit/test_pubsub_broker.py",
            "tests/unit/test_json_fast_path.py",
            "tests/protocol/test_envelope.py",
            "tests/protocol/test_history.py",
        ],
    ),
    "hub": (
        "src/wskit/hub.py",
        [
            "tests/unit/test_hub_delivery.py",
            "tests/unit/test_hub_registry.py",
            "tests/brokers/test_hub_gaps.py",
            "tests/unit/test_hub_gap_of_one.py",
            "tests/unit/test_resubscribe_position.py",
            "tests/brokers/test_broker_conformance.py::TestMemoryBroker",
            "tests/protocol/test_pubsub.py",
            "tests/protocol/test_history.py",
        ],
    ),
    "connection": (
        "src/wskit/connection.py",
        [
            "tests/unit/test_connection_overflow.py",
            "tests/unit/test_connection_lifecycle.py",
            "tests/protocol/test_connection.py",
            "tests/protocol/test_close_frames.py",
            # not tests/production/test_backpressure.py: its flood runs in a server subprocess,
            # which imports the unmutated package
        ],
    ),
    "inflight": (
        "src/wskit/inflight.py",
        [
            "tests/unit/test_inflight_after_reply.py",
            "tests/unit/test_inflight_lifecycle.py",
            "tests/unit/test_rpc_handoff.py",
            "tests/protocol/test_rpc.py",
            "tests/protocol/test_stray_cancel.py",
        ],
    ),
    "guards/ratelimit": (
        "src/wskit/guards/ratelimit/*",  # a package since 046ab22 (limiter, memory, redis, keys)
        [
            "tests/guards/test_ratelimit.py",
            "tests/guards/test_ratelimit_conformance.py",
            "tests/guards/test_ratelimit_refill_cap.py",
            "tests/guards/test_ratelimit_details.py",
        ],
    ),
    "admission": (
        "src/wskit/admission.py",
        [
            "tests/unit/test_admission.py",
            "tests/production/test_admission.py",
            "tests/testing/test_client.py",
        ],
    ),
}

#: seconds each module may take (2 cores): inflight's mutants often hang the RPC under test, and
#: each such mutant runs until its timeout; the others finish well inside theirs. Worst case,
#: all budgets spent: 30 minutes.
BUDGET_S: dict[str, float] = {module: 200.0 for module in MODULES} | {"inflight": 400.0}

#: mutmut exit-code statuses that count as detected (a timeout: the mutant hung the tests)
DETECTED = ("killed", "timeout")
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache", ".pytest_cache", ".ruff_cache")


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join(json.dumps(item) for item in items) + "]"


def prepare(module: str, *, worktree: bool = False) -> Path:
    """A fresh copy of the project for ``module``, its pyproject carrying the mutmut settings.

    The copy is of the last commit (``git archive HEAD``), so edits in progress in a shared
    tree cannot break a run halfway; ``worktree=True`` copies the files as they are instead.
    """
    source, tests = MODULES[module]
    work = WORK / module.replace("/", "-")
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    if worktree:
        shutil.copytree(ROOT / "src", work / "src", ignore=_IGNORE)
        shutil.copytree(ROOT / "tests", work / "tests", ignore=_IGNORE)
        shutil.copy2(ROOT / "pyproject.toml", work / "pyproject.toml")
    else:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", "HEAD", "src", "tests", "pyproject.toml"],
            capture_output=True,
            check=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(work)], input=archive, check=True)
    if not list(work.glob(source)):
        raise SystemExit(f"mutation: {source} matches no file (moved? update MODULES in {__file__})")
    existing = [t for t in tests if (work / t.split("::")[0]).exists()]
    settings = f"""
[tool.mutmut]
source_paths = ["src"]
only_mutate = [{json.dumps(source)}]
pytest_add_cli_args_test_selection = {_toml_list(existing)}
# a mutant that makes a test wait forever fails it in 15 s, not pytest.ini's 60
pytest_add_cli_args = ["-p", "no:cacheprovider", "--timeout=15"]
timeout_multiplier = 5.0
# log lines are observability text: their mutants (a changed message) are noise here
do_not_mutate_patterns = ['^\\s*log\\.(debug|info|warning|error|exception)\\(']
use_git_change_detection = false
"""
    pyproject = (work / "pyproject.toml").read_text()
    (work / "pyproject.toml").write_text(pyproject + settings)
    return work


def run(module: str, *, jobs: int, budget_s: float, worktree: bool = False) -> dict[str, object]:
    """Run mutmut for ``module`` (bounded by ``budget_s``); its counts and survivors."""
    work = prepare(module, worktree=worktree)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MUTANT_UNDER_TEST")}
    mutmut = [sys.executable, "-m", "mutmut"]
    log = (work / "mutmut.log").open("w")
    started = time.monotonic()
    proc = subprocess.Popen(
        [*mutmut, "run", "--max-children", str(jobs)],
        cwd=work,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        proc.wait(timeout=budget_s)
        finished = True
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGINT)  # mutmut saves what it has on Ctrl-C
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        finished = False
    log.close()
    elapsed = time.monotonic() - started
    listing = subprocess.run(
        [*mutmut, "results", "--all", "true"], cwd=work, env=env, capture_output=True, text=True, check=False
    ).stdout
    statuses: dict[str, str] = {}
    for line in listing.splitlines():
        match = re.match(r"\s*(\S+): (.+)$", line)
        if match:
            statuses[match.group(1)] = match.group(2).strip()
    counts: dict[str, int] = {}
    for status in statuses.values():
        counts[status] = counts.get(status, 0) + 1
    return {
        "module": module,
        "work": work,
        "finished": finished,
        "seconds": elapsed,
        "counts": counts,
        "survivors": sorted(name for name, status in statuses.items() if status not in DETECTED),
        "statuses": statuses,
    }


def report(results: list[dict[str, object]], *, show: bool) -> None:
    total_detected = total = 0
    print(f"\n{'module':<18} {'killed':>7} / {'total':<6} {'score':>6}  {'time':>6}  other")
    for result in results:
        counts: dict[str, int] = result["counts"]  # type: ignore[assignment]
        n = sum(counts.values())
        detected = sum(counts.get(s, 0) for s in DETECTED)
        total_detected += detected
        total += n
        score = f"{100 * detected / n:5.1f}%" if n else "  n/a"
        other = ", ".join(f"{s} {c}" for s, c in sorted(counts.items()) if s not in DETECTED)
        note = "" if result["finished"] else "  (budget ran out: partial)"
        if not n:
            note += f"  no results: see {result['work']}/mutmut.log (a failing clean run?)"
        print(f"{result['module']:<18} {detected:>7} / {n:<6} {score:>6}  {result['seconds']:5.0f}s  {other}{note}")
    if total:
        print(f"{'overall':<18} {total_detected:>7} / {total:<6} {100 * total_detected / total:5.1f}%")
    for result in results:
        survivors: list[str] = result["survivors"]  # type: ignore[assignment]
        if not survivors:
            continue
        statuses: dict[str, str] = result["statuses"]  # type: ignore[assignment]
        print(f"\n{result['module']}: {len(survivors)} not killed (in {result['work']})")
        for name in survivors:
            print(f"  {statuses[name]:<10} {name}")
            if show:
                diff = subprocess.run(
                    [sys.executable, "-m", "mutmut", "show", name],
                    cwd=result["work"],  # type: ignore[arg-type]
                    capture_output=True,
                    text=True,
                    check=False,
                ).stdout
                print("    " + "\n    ".join(diff.splitlines()[1:]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help=f"any of {', '.join(MODULES)} (default: all)")
    parser.add_argument("--jobs", type=int, default=2, help="mutants tested at once (default 2)")
    parser.add_argument("--budget", type=float, help="seconds per module at most (default: BUDGET_S)")
    parser.add_argument("--show", action="store_true", help="print each surviving mutant's diff")
    parser.add_argument("--worktree", action="store_true", help="test uncommitted files too (default: HEAD)")
    args = parser.parse_args()
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        parser.error(f"unknown module(s) {unknown}; choose from {list(MODULES)}")
    try:
        import mutmut  # noqa: F401
    except ImportError:
        print("mutmut is not installed: pip install --group mutation (make mutation does it)", file=sys.stderr)
        return 2
    results = []
    for module in args.modules or list(MODULES):
        print(f"mutation: {module} ...", flush=True)
        results.append(run(module, jobs=args.jobs, budget_s=args.budget or BUDGET_S[module], worktree=args.worktree))
    report(results, show=args.show)
    return 0


if __name__ == "__main__":
    sys.exit(main())
