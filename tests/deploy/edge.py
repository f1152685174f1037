"""The edge of the deployment tests: ``deploy/nginx.conf`` run by a real nginx, and relays
that give each test client a source address of its own.

:class:`Nginx` fills the template's placeholders, runs nginx in the foreground with a
temporary prefix directory (pid, logs, temporary files inside it) on a loopback port, and
as an unprivileged user: when the tests run as root (CI), nginx is started as ``nobody``,
so the template is proven to need no privilege.

:class:`SourceRelay`: nginx's ``ip_hash`` hashes the first three octets of an IPv4 client
address, so every client on 127.0.0.1 would land on the same instance. The Python client
has no option for its local address, so each client connects to a relay of its own on
127.0.0.1, which opens the real connection to nginx from ``127.0.N.1``. The relay forwards
bytes only: TLS runs end to end between the client and nginx.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import signal
import ssl
import subprocess
import tempfile
from pathlib import Path

import aiohttp
from tests.recovery.processes import Proxy
from tests.support.ci import unavailable
from tests.support.waiting import eventually
from tests.tls.processes import ROOT, START_S, http_get

__all__ = ["NGINX", "TEMPLATE", "Nginx", "SourceRelay", "fill", "nginx_or_skip"]

TEMPLATE = ROOT / "deploy" / "nginx.conf"
#: Debian installs nginx in /usr/sbin, which is not on every user's PATH
NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)


def nginx_or_skip() -> str:
    """The nginx binary; without one the test is skipped (failed under CI=true)."""
    if NGINX is None:
        unavailable("nginx is not installed (make test installs it: scripts/system-deps.sh)")
    return NGINX


def fill(template: str, values: dict[str, str]) -> str:
    """``template`` with each ``{{NAME}}`` replaced; raises if one is left unfilled outside comments."""
    for name, value in values.items():
        template = template.replace("{{" + name + "}}", value)
    for line in template.splitlines():
        if "{{" in line and not line.lstrip().startswith("#"):
            raise ValueError(f"placeholder left unfilled: {line.strip()}")
    return template


class Nginx:
    """nginx serving ``deploy/nginx.conf`` filled with ``values`` (LISTEN must be 127.0.0.1:PORT)."""

    def __init__(self, values: dict[str, str], *, port: int, cert: Path, key: Path) -> None:
        self.binary = nginx_or_skip()
        self.port = port
        self.prefix = Path(tempfile.mkdtemp(prefix="wskit-nginx-"))
        self.conf = self.prefix / "nginx.conf"
        self.proc: subprocess.Popen[bytes] | None = None
        try:
            self._lay_out(values, cert, key)
        except BaseException:
            self.remove()
            raise

    def _lay_out(self, values: dict[str, str], cert: Path, key: Path) -> None:
        # the certificate and key are copied in: the prefix is all the unprivileged user reads
        for source, name in ((cert, "server.crt"), (key, "server.key")):
            shutil.copyfile(source, self.prefix / name)
        values = {**values, "CERT_FILE": str(self.prefix / "server.crt"), "KEY_FILE": str(self.prefix / "server.key")}
        self.conf.write_text(fill(TEMPLATE.read_text(), values))
        for directory in ("logs", "temp"):
            (self.prefix / directory).mkdir()

    @property
    def error_log(self) -> str:
        path = self.prefix / "logs" / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    @property
    def access_log(self) -> str:
        path = self.prefix / "logs" / "access.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _spawn(self) -> None:
        args = [
            self.binary,
            "-p",
            str(self.prefix),
            "-c",
            str(self.conf),
            "-e",
            str(self.prefix / "logs" / "error.log"),
        ]
        args += ["-g", "daemon off;"]
        as_user: dict[str, object] = {}
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            for path in [self.prefix, *self.prefix.rglob("*")]:
                os.chown(path, nobody.pw_uid, nobody.pw_gid)
            as_user = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **as_user)  # type: ignore[call-overload]

    async def start(self) -> None:
        """Start nginx and wait until it answers (any status: the instances may be down)."""
        self._spawn()
        await eventually(self._answers, timeout=START_S, what="nginx answers on its port")

    async def _answers(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"nginx exited {self.proc.returncode}:\n{self.error_log[-3000:]}")
        try:
            await http_get(f"https://127.0.0.1:{self.port}/healthz", context=_no_verify(), timeout=1.0)
        except (aiohttp.ClientError, OSError, TimeoutError):
            return False
        return True

    def stop(self) -> None:
        """Stop nginx (fast shutdown); its logs stay until :meth:`remove`."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def remove(self) -> None:
        """Stop nginx and remove its directory."""
        self.stop()
        shutil.rmtree(self.prefix, ignore_errors=True)


def _no_verify() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class SourceRelay:
    """Forwards each connection made to it to ``127.0.0.1:target`` from the address ``source``."""

    def __init__(self, target: int, source: str, *, max_connections: int = 8) -> None:
        self.target = target
        self.source = source
        self.max_connections = max_connections
        self.port = 0
        self._server: asyncio.Server | None = None
        #: both ends of every connection being relayed, and the tasks relaying them
        self._ends: set[asyncio.StreamWriter] = set()
        self._relaying: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop accepting and cut every relayed connection (their peers see a reset)."""
        if self._server is not None:
            self._server.close()
        for end in list(self._ends):
            end.transport.abort()
        if self._relaying:
            await asyncio.wait(list(self._relaying), timeout=5)
        if self._server is not None:
            await self._server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._relaying) >= self.max_connections:
            writer.transport.abort()
            return
        task = asyncio.current_task()
        assert task is not None
        self._relaying.add(task)
        ends = [writer]
        self._ends.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target, local_addr=(self.source, 0))
            ends.append(up_writer)
            self._ends.add(up_writer)
            # the recovery tests' proxy pipes the same way: bytes on until one side ends
            await asyncio.gather(Proxy._pipe(reader, up_writer), Proxy._pipe(up_reader, writer))
        except OSError:
            pass  # nothing listening: the client sees its connection cut, as it would
        finally:
            for end in ends:
                end.transport.abort()
                self._ends.discard(end)
            self._relaying.discard(task)
