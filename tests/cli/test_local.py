"""The commands that need no server: ``--version``, ``check``, and every bad input's one line.

Each runs the real ``python -m wskit`` in a subprocess. Bad input of any kind (a module that
does not import, a missing attribute, an object that is not a router, a bad flag, setting or
JSON argument, an unreachable URL) gives one line on stderr that says what to fix, no
traceback, and exit code 1 (failure) or 2 (usage).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tests.cli.conftest import APP, ROOT, one_error_line, wskit

from wskit import __version__
from wskit.cli.settings import flag_of
from wskit.config import OPTIONS


def test_version() -> None:
    """--version prints the package's version, exit 0."""
    done = wskit("--version")
    assert (done.returncode, done.stdout) == (0, f"wskit {__version__}\n")


def test_check_prints_the_route_table() -> None:
    """check lists each route (kind, request, response, middleware), the messages the server
    sends with their topics, the topic policy and the settings; exit 0."""
    done = wskit("check", APP)
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line.split() for line in done.stdout.splitlines() if line.startswith("  ")}
    assert rows["ECHO"] == ["ECHO", "rpc", "Text", "ECHOED(Text)", "1"]
    assert rows["PID"] == ["PID", "rpc", "-", "PID_IS(Process)", "1"]
    assert rows["POST"] == ["POST", "event", "Post", "-", "1"]
    assert rows["NEWS"] == ["NEWS", "Text", "feed:*"]
    assert "  clients may subscribe to: feed:*" in done.stdout.splitlines()
    assert done.stdout.splitlines()[-1].startswith("settings: ok (ws://127.0.0.1:8000, ")


def test_check_reads_settings_flags_and_environment() -> None:
    """check resolves settings as run does: a flag over its variable."""
    done = wskit("check", APP, "--port", "9100", env={"PORT": "9200", "WORKERS": "1"})
    assert done.returncode == 0, done.stderr
    assert "ws://127.0.0.1:9100," in done.stdout.splitlines()[-1]


def test_check_factory() -> None:
    """--factory calls a function of no arguments and checks the router it returns."""
    done = wskit("check", "tests.cli.app:make_router", "--factory")
    assert done.returncode == 0, done.stderr
    assert "tests.cli.app:make_router: 1 route(s)" in done.stdout


def test_check_reports_a_bad_environment_variable_as_a_problem() -> None:
    """A setting that cannot be served is one problem line naming the variable, exit 1; the
    route table is still printed."""
    done = wskit("check", APP, env={"MAX_PAYLOAD_BYTES": "0"})
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "wskit check: problem: environment variable MAX_PAYLOAD_BYTES='0' is invalid: must be >= 1 "
        "(largest inbound frame; larger closes 1009)"
    ]
    assert "ECHO" in done.stdout


def test_check_reports_a_router_that_cannot_be_served(tmp_path: Path) -> None:
    """What stops the runtime from being built (require_auth on every route, nothing to
    authenticate) is a problem line, exit 1."""
    (tmp_path / "guarded.py").write_text(
        "from wskit import Router, message\n"
        "from wskit.guards import require_auth\n"
        "router = Router()\n"
        "router.use(require_auth)\n"
        "@router.on(message('A'))\n"
        "async def a(ctx) -> None: ...\n"
    )
    done = wskit("check", "guarded:router", cwd=tmp_path)
    assert done.returncode == 1, done.stdout
    [line] = done.stderr.splitlines()
    assert line.startswith("wskit check: problem: ConfigError: require_auth guards every route")


def _module(tmp_path: Path, name: str, source: str) -> Path:
    (tmp_path / f"{name}.py").write_text(source)
    return tmp_path


@pytest.mark.parametrize(
    ("target", "source", "expected"),
    [
        (
            "app.chat:router",
            None,
            "cannot import app.chat: No module named 'app' (run from the project directory or set PYTHONPATH)",
        ),
        ("broken:router", "x = (\n", "cannot import broken: '(' was never closed (broken.py, line 1)"),
        (
            "raising:router",
            "import os\nraise ValueError('boom')\n",
            "cannot import raising: ValueError: boom (at raising.py:2)",
        ),
        (
            "needs:router",
            "import not_installed_anywhere\n",
            "cannot import needs: No module named "
            "'not_installed_anywhere' (at needs.py:1): install it, or fix the import",
        ),
        (
            "dup:router",
            "from wskit import Router, message\nr = Router()\nA = message('A')\n"
            "async def a(ctx) -> None: ...\nr.on(A, a)\nr.on(A, a)\n",
            "cannot import dup: UsageError: message type 'A' already has a handler (a) (at dup.py:6)",
        ),
        (
            "plain:routr",
            "from wskit import Router\nrouter = Router()\n",
            "plain has no attribute 'routr' (its Routers: router)",
        ),
        ("plain:x.y", "x = 1\n", "plain.x has no attribute 'y'"),
        ("plain:router", "router = {'routes': []}\n", "plain:router is a dict, not a wskit Router"),
        (
            "plain:make",
            "def make():\n    return 1\n",
            "plain:make is a function, not a Router: pass --factory "
            "to call it (with no arguments) and use the Router it returns",
        ),
    ],
)
def test_bad_target_is_one_line(tmp_path: Path, target: str, source: str | None, expected: str) -> None:
    """Each way MODULE:ROUTER can fail: one line saying what and where, exit 1."""
    if source is not None:
        _module(tmp_path, target.split(":")[0], source)
    done = wskit("check", target, cwd=tmp_path)
    assert done.returncode == 1
    assert one_error_line(done, "check") == f"wskit check: error: {expected}"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("def make():\n    return 42\n", "plain:make() returned an int, not a wskit Router"),
        ("def make():\n    raise RuntimeError('no db')\n", "plain:make() raised RuntimeError: no db (at plain.py:2)"),
        (
            "async def make():\n    return None\n",
            "plain:make() returned an awaitable: the factory must be a plain function that returns a Router",
        ),
        ("make = 3\n", "plain:make is an int, not a function (--factory calls it with no arguments)"),
    ],
)
def test_bad_factory_is_one_line(tmp_path: Path, source: str, expected: str) -> None:
    """--factory: a factory that raises, returns something else or is not callable: one line, exit 1."""
    _module(tmp_path, "plain", source)
    done = wskit("check", "plain:make", "--factory", cwd=tmp_path)
    assert done.returncode == 1
    assert one_error_line(done, "check") == f"wskit check: error: {expected}"


def test_run_reports_an_import_failure_the_same_way(tmp_path: Path) -> None:
    """run fails on a module that does not import before anything listens: one line, exit 1."""
    done = wskit("run", "missing_module:router", "--port", "0", cwd=tmp_path)
    assert done.returncode == 1
    assert one_error_line(done, "run") == (
        "wskit run: error: cannot import missing_module: No module named 'missing_module' "
        "(run from the project directory or set PYTHONPATH)"
    )


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    """--debug adds the traceback before the same one line."""
    _module(tmp_path, "raising", "raise ValueError('boom')\n")
    done = wskit("check", "raising:router", "--debug", cwd=tmp_path)
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "ValueError: boom" in done.stderr
    assert (
        done.stderr.splitlines()[-1] == "wskit check: error: cannot import raising: ValueError: boom (at raising.py:1)"
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["check", APP, "--port", "70000"],
            "wskit check: error: argument --port: must be between 0 and 65535 (got '70000')",
        ),
        (
            ["run", APP, "--max-payload-bytes", "0"],
            "wskit run: error: argument --max-payload-bytes: must be >= 1 (got '0')",
        ),
        (
            ["run", APP, "--backpressure", "maybe"],
            "wskit run: error: argument --backpressure: must be one of close, drop-oldest, drop-new (got 'maybe')",
        ),
        (
            ["check", "app"],
            "wskit check: error: argument MODULE:ROUTER: expected MODULE:ROUTER such as app.chat:router, got 'app'",
        ),
        (
            ["send", "http://127.0.0.1/", "A"],
            "wskit send: error: argument URL: must be ws://host[:port]/path or wss://..., got 'http://127.0.0.1/'",
        ),
        (
            ["send", "ws://127.0.0.1:9/", "A", "{x"],
            "wskit send: error: argument JSON: not valid JSON: Expecting "
            "property name enclosed in double quotes at line 1 column 2 of '{x'",
        ),
        (
            ["request", "ws://127.0.0.1:9/", "A", "{}", "--meta", "[1]"],
            "wskit request: error: argument --meta: must be a JSON object, got '[1]'",
        ),
        (
            ["listen", "ws://127.0.0.1:9/", "--count", "0"],
            "wskit listen: error: argument --count: must be a finite number > 0, got '0'",
        ),
        (
            ["serve", APP],
            "wskit: error: argument COMMAND: invalid choice: 'serve' (choose from 'run', 'check', "
            "'asyncapi', 'types', 'send', 'request', 'listen')",
        ),
    ],
)
def test_usage_errors_are_one_line_exit_2(args: list[str], expected: str) -> None:
    """A bad argument, flag value or JSON argument: one line naming it and what is accepted, exit 2."""
    done = wskit(*args)
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    prog = expected.split(": error: ")[0]
    assert lines[0] == f"{expected} (see {prog} --help)"


def test_a_bad_environment_variable_stops_run_with_exit_2() -> None:
    """run: an environment variable serve() cannot use fails before the import, naming it, exit 2."""
    done = wskit("run", "not_even_imported:router", env={"PORT": "70000"})
    assert done.returncode == 2
    assert one_error_line(done, "run") == (
        "wskit run: error: environment variable PORT='70000' is invalid: must be between 0 and 65535 "
        "(TCP port (0 picks a free one))"
    )


@pytest.mark.parametrize("command", [["send", "A", "{}"], ["request", "A", "{}"], ["listen"]])
def test_unreachable_url_is_one_line(command: list[str]) -> None:
    """Nothing listening: 'cannot connect to URL: connection refused', exit 1."""
    name, *rest = command
    done = wskit(name, "ws://127.0.0.1:9/", *rest)
    assert done.returncode == 1
    assert one_error_line(done, name) == f"wskit {name}: error: cannot connect to ws://127.0.0.1:9/: connection refused"


def test_run_help_has_every_setting_with_its_variable() -> None:
    """run --help lists a flag for every serve() option, with its environment variable."""
    done = wskit("run", "--help")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    for option in OPTIONS:
        assert flag_of(option) in text, option.name
        assert f"env {option.env}" in text, option.env


def test_check_loads_no_server_or_client_library() -> None:
    """check builds the runtime without aiohttp, picows or redis (nothing is served)."""
    code = (
        "import sys\n"
        "from wskit.cli import main\n"
        f"assert main(['check', {APP!r}]) == 0\n"
        "print(json.dumps([m for m in ('aiohttp', 'picows', 'redis', 'uvicorn') if m in sys.modules]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", "import json\n" + code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == []


def test_the_project_imports_without_the_current_directory_on_sys_path(tmp_path: Path) -> None:
    """Under a console script the current directory is not on sys.path (``python -P`` gives
    the same start): MODULE:ROUTER is still found from the project directory."""
    (tmp_path / "plain.py").write_text("from wskit import Router\nrouter = Router()\n")
    done = wskit("check", "plain:router", cwd=tmp_path, isolated=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("plain:router: 0 route(s)")
