"""docs/cli.md runs as written: its ``hello.py`` and every ``$ wskit ...`` line of its console blocks.

The page is read top to bottom in a temporary directory: a ``python`` block whose first line
is ``# NAME.py`` is written to that file; each ``$`` line of a ``console`` block runs (the
real ``python -m wskit``), and the lines under it must be what it prints: stdout when it
succeeds, stderr when it fails (``...`` stands for any text, or, alone on a line, for any
lines). A line ending in ``&`` runs in the background: ``wskit run`` serves until the page
is done, ``wskit listen`` is waited for at the end of its block. A free port stands in for
8000. A block after ``<!-- fragment -->`` is not run (the markers: tests/support/docblocks.py);
any other block makes the test fail, so an example cannot be added without being run.
"""

from __future__ import annotations

import re
import shlex
import socket
from pathlib import Path

from tests.cli.conftest import ROOT, Running, wskit
from tests.support.docblocks import Block, Step, matches, read_blocks, steps

DOC = ROOT / "docs" / "cli.md"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Page:
    """Runs the page's examples in one directory, with one port for 8000."""

    def __init__(self, directory: Path, port: int) -> None:
        self.directory = directory
        self.port = port
        self.servers: list[Running] = []
        self.commands: set[str] = set()

    def _port(self, text: str) -> str:
        return text.replace("127.0.0.1:8000/", f"127.0.0.1:{self.port}/").replace("--port 8000", f"--port {self.port}")

    def write(self, block: Block) -> None:
        first = block.lines[0] if block.lines else ""
        assert re.fullmatch(r"# [\w.]+\.py", first), f"{DOC.name}:{block.line}: a python block starts '# NAME.py'"
        (self.directory / first[2:]).write_text("\n".join(block.lines) + "\n")

    def run(self, block: Block) -> None:
        waiting: list[tuple[Running, Step]] = []
        for step in steps(block):
            tokens = shlex.split(self._port(step.command))
            env: dict[str, str] = {}
            while tokens and re.fullmatch(r"[A-Z_]+=.*", tokens[0]):
                name, _, value = tokens.pop(0).partition("=")
                env[name] = value
            background = tokens[-1] == "&"
            if background:
                tokens.pop()
            assert tokens[0] == "wskit", f"{DOC.name}:{step.line}: only wskit commands run here"
            args = tokens[1:]
            self.commands.add(args[0])
            expected = [self._port(line) for line in step.expected]
            if not background:
                done = wskit(*args, env=env, cwd=self.directory)
                printed = done.stdout if done.returncode == 0 else done.stderr
                assert matches(expected, printed.splitlines()), (
                    f"{DOC.name}:{step.line}: `{step.command}` exited {done.returncode} and printed\n{printed}"
                )
                continue
            running = Running(*args, env=env, cwd=self.directory)
            running.wait_for("listening on ")
            if args[0] == "run":
                assert not expected, f"{DOC.name}:{step.line}: a background server's output is not compared"
                self.servers.append(running)
            else:
                waiting.append((running, step))
        for running, step in waiting:
            with running:
                code = running.wait()
            assert code == 0, f"{DOC.name}:{step.line}: exit {code}: {running.err}"
            assert matches([self._port(line) for line in step.expected], running.out), (
                f"{DOC.name}:{step.line}: `{step.command}` printed {running.out}"
            )

    def close(self) -> None:
        for server in self.servers:
            with server:
                assert server.stop() == 0


def test_every_example_runs_as_written(tmp_path: Path) -> None:
    """Each block of docs/cli.md either runs and prints what the page says, or is a fragment."""
    page = Page(tmp_path, _free_port())
    try:
        for block in read_blocks(DOC):
            if block.fragment:
                continue
            if block.lang == "python":
                page.write(block)
            elif block.lang == "console":
                page.run(block)
            else:
                raise AssertionError(f"{DOC.name}:{block.line}: a {block.lang!r} block must run or be a fragment")
    finally:
        page.close()
    # every command has an example that runs
    assert page.commands >= {"check", "run", "request", "send", "listen", "asyncapi", "types"}
    assert (tmp_path / "hello.asyncapi.json").is_file()
    assert "@ws-kit/zod" in (tmp_path / "hello.ts").read_text()


def test_the_matcher_can_fail() -> None:
    """The comparison is strict where the page gives text: a missing, extra or different line fails."""
    assert matches(["a", "...", "c"], ["a", "b", "b", "c"])
    assert matches(["x ... z"], ["x yyy z"])
    assert not matches(["a", "c"], ["a", "b", "c"])
    assert not matches(["a"], ["a", "b"])
    assert not matches(["x ... z"], ["x yyy"])
