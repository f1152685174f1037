"""Runs the code blocks of one Markdown page as written, and says which failed and where.

A page is read top to bottom in a scratch directory of its own (the markers are those of
tests/support/docblocks.py):

- ``python``: a file block (first line ``# NAME.py``) is written to ``NAME.py``; then
  ``test_*.py`` is run by pytest, a ``<!-- run: serve -->`` one by ``python NAME.py`` in the
  background until the page is done, and any other is imported (its top-level code runs, its
  ``if __name__ == "__main__":`` part does not). Any other Python block runs as a script in a
  fresh interpreter (``__name__ == "__main__"``), after the previous ones of its
  ``<!-- run: with-previous -->`` chain, in their namespace. Tracebacks name the page and the
  line of the page.
- ``sh``/``bash``: each command must be one this test may run (``wskit`` or ``python -m wskit``
  with ``--version``, ``--help``, ``check``, ``asyncapi`` or ``types``) and exit 0;
  ``console``: the same for each ``$`` line, which must also print the lines under it.
- ``json`` must parse (one document, or one per line); ``yaml`` is parsed by test_pages.py
  when PyYAML is installed; ``text`` is an illustration (a diagram, frames, output).
- Any other language must be marked ``<!-- fragment -->``, and a Python fragment must still
  be Python (top-level ``await`` allowed: most are lines from inside a handler).

A server a page starts listens on a free port, which stands in for 8000 in every later block
(``127.0.0.1:8000`` and ``localhost:8000`` are rewritten), as in tests/cli/test_docs.py.
"""

from __future__ import annotations

import ast
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import TIME_SCALE
from tests.support.docblocks import Block, matches, read_blocks, steps

from wskit.config import OPTIONS

__all__ = ["OWN_TESTS", "PAGES", "ROOT", "PageRun", "free_port", "run_page"]

ROOT = Path(__file__).resolve().parents[2]
#: every page whose blocks must run or be marked: the README and docs/*.md
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: pages whose blocks a test of their own runs as written, with the same markers
OWN_TESTS = {"docs/cli.md": "tests/cli/test_docs.py", "docs/contract.md": "tests/export/test_docs.py"}
#: how long one interpreter may take for its blocks (start-up included), and a server to listen
RUN_S = 30.0 * TIME_SCALE
START_S = 15.0 * TIME_SCALE
#: what a shell block may run: ``wskit`` (or ``python -m wskit``) with one of these first
SAFE_COMMANDS = {"--version", "--help", "check", "asyncapi", "types"}
#: a settings variable of ours in the environment of the test run must not reach a page's code
_SETTINGS = {option.env for option in OPTIONS} | {"WSKIT_TOKEN", "WSKIT_TRANSPORT", "CORS_ORIGIN"}

#: runs in the page's interpreter (``python -c``, so the scratch directory is on sys.path): the
#: blocks of one chain in one namespace, each compiled under the page's path with its lines
#: shifted to the page's, so a traceback points at the page
_DRIVER = """\
import json, sys
namespace = {"__name__": "__main__"}
for block in json.load(sys.stdin):
    code = compile("\\n" * block["line"] + block["source"], block["page"], "exec", dont_inherit=True)
    exec(code, namespace)
"""


def free_port() -> int:
    """A TCP port nothing listens on, for a server that a page starts on 8000."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in _SETTINGS and k != "PYTHONPATH"}
    return {**base, **extra}


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


@dataclass
class PageRun:
    """One page's blocks, run in ``directory``; ``failures`` says what went wrong, and where."""

    page: Path
    directory: Path
    blocks: list[Block] = field(init=False)
    failures: list[str] = field(default_factory=list)
    #: how each block was treated: ran, fragment, parsed, illustration, delegated
    counts: Counter[str] = field(default_factory=Counter)
    port: int | None = None
    _servers: list[tuple[Block, subprocess.Popen[bytes]]] = field(default_factory=list)
    _chain: list[Block] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.blocks = read_blocks(self.page, ROOT if self.page.is_relative_to(ROOT) else self.page.parent)

    # -- the walk

    def run(self) -> None:
        """Every block of the page, in order; then the servers it started are stopped."""
        try:
            for block in self.blocks:
                self._one(block)
            self._flush()
        finally:
            self._stop_servers()

    def _one(self, block: Block) -> None:
        if block.fragment:
            self.counts["fragment"] += 1
            if block.lang == "python":
                self._compiles(block)
            return
        if block.lang == "python":
            self._python(block)
        elif block.lang in {"sh", "bash", "console"}:
            self._shell(block)
        elif block.lang == "json":
            self._json(block)
        elif block.lang == "yaml":
            self.counts["delegated"] += 1  # test_pages.py parses it when PyYAML is installed
        elif block.lang == "text":
            self.counts["illustration"] += 1
        else:
            self._fail(block, f"a {block.lang or 'plain'!r} block must run or be marked <!-- fragment: why -->")

    def _fail(self, block: Block, message: str) -> None:
        self.failures.append(f"{block.where}: {message}")

    def _compiles(self, block: Block) -> None:
        try:
            compile(block.text, block.where, "exec", ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        except SyntaxError as exc:
            self._fail(block, f"a Python fragment must be Python (line {block.line + (exc.lineno or 0)}: {exc.msg})")

    def _ported(self, text: str) -> str:
        if self.port is None:
            return text
        port = str(self.port)
        return text.replace("127.0.0.1:8000", f"127.0.0.1:{port}").replace("localhost:8000", f"localhost:{port}")

    # -- Python

    def _python(self, block: Block) -> None:
        self.counts["ran"] += 1
        if block.run.startswith("uses "):
            _, page, borrowed = block.run.split()
            self._borrow(block, ROOT / page, borrowed)
        if block.run == "with-previous":
            if not self._chain:
                self._fail(block, "<!-- run: with-previous --> needs a Python block before it that runs as a script")
                return
            self._chain.append(block)
            return
        self._flush()
        name = block.file_name
        if name is None:
            if block.run == "serve":
                self._fail(block, "<!-- run: serve --> goes on a file block (first line '# NAME.py')")
            self._chain = [block]
            return
        (self.directory / name).write_text(self._ported(block.text), encoding="utf-8")
        if block.run == "serve":
            self._serve(block, name)
        elif name.startswith("test_"):
            self._command(block, [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", name])
        else:
            self._command(block, [sys.executable, "-c", f"import {name[:-3]}"])

    def _borrow(self, block: Block, page: Path, name: str) -> None:
        found = [b for b in read_blocks(page, ROOT) if b.file_name == name and b.lang == "python"]
        if not found:
            self._fail(block, f"{page.relative_to(ROOT)} has no file block {name!r}")
            return
        (self.directory / name).write_text(self._ported(found[0].text), encoding="utf-8")

    def _flush(self) -> None:
        """Run the pending chain of script blocks in one interpreter."""
        chain, self._chain = self._chain, []
        if not chain:
            return
        payload = [{"page": str(self.page), "line": b.line, "source": self._ported(b.text)} for b in chain]
        self._command(chain[0], [sys.executable, "-c", _DRIVER], stdin=json.dumps(payload))

    def _command(self, block: Block, args: list[str], *, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        try:
            done = subprocess.run(
                args,
                input=stdin,
                capture_output=True,
                text=True,
                cwd=self.directory,
                env=_env(),
                timeout=RUN_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            self._fail(
                block, f"still running after {RUN_S:g} s (a block that serves is <!-- run: serve --> or a fragment)"
            )
            return subprocess.CompletedProcess(args, -1, "", "")
        if done.returncode != 0:
            self._fail(block, f"exited {done.returncode}\n{_tail(done.stdout)}\n{_tail(done.stderr)}")
        return done

    def _serve(self, block: Block, name: str) -> None:
        if self.port is None:
            self.port = free_port()
        log = (self.directory / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, name],
            cwd=self.directory,
            env=_env(PORT=str(self.port)),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self._servers.append((block, proc))
        deadline = time.monotonic() + START_S
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        self._fail(block, f"`python {name}` did not listen on port {self.port}:\n{self._log(name)}")

    def _log(self, name: str) -> str:
        return _tail((self.directory / f"{name}.log").read_text(errors="replace"))

    def _stop_servers(self) -> None:
        for block, proc in self._servers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(START_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                code = None
            if code != 0:
                name = block.file_name or "?"
                self._fail(block, f"`python {name}` ended with {code} on SIGTERM:\n{self._log(name)}")

    # -- shells, data

    def _shell(self, block: Block) -> None:
        self.counts["ran"] += 1
        if block.lang == "console":
            for step in steps(block):
                if not self._shell_command(block, step.command, step.expected, step.line):
                    return
            return
        commands = [(block.line + n, line) for n, line in enumerate(block.lines, start=1) if line.strip()]
        for number, line in commands:
            if not line.lstrip().startswith("#") and not self._shell_command(block, line, None, number):
                return

    def _shell_command(self, block: Block, command: str, expected: list[str] | None, line: int) -> bool:
        """Run one command of a shell block; False when it is not one this test may run."""
        tokens = shlex.split(self._ported(command), comments=True)
        env: dict[str, str] = {}
        while tokens and "=" in tokens[0] and tokens[0].split("=", 1)[0].isidentifier():
            name, _, value = tokens.pop(0).partition("=")
            env[name] = value
        if tokens[:1] == ["wskit"]:
            args = tokens[1:]
        elif tokens[:3] in (["python", "-m", "wskit"], ["python3", "-m", "wskit"]):
            args = tokens[3:]
        else:
            args = []
        if not args or args[0] not in SAFE_COMMANDS:
            self.failures.append(
                f"{block.page}:{line}: `{command}` is not a command this test runs "
                f"(wskit {'/'.join(sorted(SAFE_COMMANDS))}): mark the block <!-- fragment: why -->"
            )
            return False
        done = subprocess.run(
            [sys.executable, "-m", "wskit", *args],
            capture_output=True,
            text=True,
            cwd=self.directory,
            env=_env(PYTHONPATH=str(ROOT), **env),
            timeout=RUN_S,
            check=False,
        )
        printed = done.stdout if done.returncode == 0 else done.stderr
        if expected is None and done.returncode != 0:
            self.failures.append(f"{block.page}:{line}: `{command}` exited {done.returncode}\n{_tail(printed)}")
        elif expected is not None and not matches(expected, printed.splitlines()):
            self.failures.append(f"{block.page}:{line}: `{command}` exited {done.returncode} and printed\n{printed}")
        return True

    def _json(self, block: Block) -> None:
        self.counts["parsed"] += 1
        try:
            json.loads(block.text)
            return
        except ValueError:
            pass
        # JSON Lines: one document a line (frames, log lines)
        for offset, line in enumerate(block.lines, start=1):
            if not line.strip():
                continue
            try:
                json.loads(line)
            except ValueError as exc:
                self.failures.append(f"{block.page}:{block.line + offset}: not JSON: {exc}")


def run_page(page: Path, directory: Path) -> PageRun:
    """Run ``page``'s blocks in ``directory``; the run, with its failures and counts."""
    run = PageRun(page, directory)
    run.run()
    return run
