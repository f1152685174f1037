"""Two wskit instances, one Redis: watch a chat message cross from one to the other.

    python examples/redis-multi-instance/run.py            # run the demo, then stop everything
    python examples/redis-multi-instance/run.py --keep     # ... and keep both instances running

What it does, all on 127.0.0.1:

1. Redis: uses ``REDIS_URL`` when it is set and answers, else starts a throwaway
   ``redis-server`` on a free port (removed at the end).
2. Starts two processes of ``app.py`` (instances "A" and "B") on ports 8001 and 8002 (free
   ports when those are taken), sharing one Redis namespace, and waits for ``/readyz``.
3. Connects ``ada`` to A and ``bob`` to B (the ``websockets`` client), joins both to the room
   ``lobby``, sends a message each way and prints it as received on the other instance,
   asks WHO is in the room (members from both instances), then shows history recovery:
   ``bob`` leaves, ``ada`` says two things, ``bob`` comes back on B with his last offset and
   receives exactly what he missed.
4. Stops everything and exits 0 (or 1, with the servers' logs, when something failed). With
   ``--keep`` the instances stay up until Ctrl-C, for your own clients.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

try:
    import redis
    from websockets.asyncio.client import ClientConnection, connect
    from websockets.exceptions import ConnectionClosed

    import wskit  # noqa: F401 - only checked for here; the instances import it
except ImportError as missing:
    sys.exit(
        f"run.py needs the Python package {missing.name!r}. From the repository root:\n"
        "  make install && . .venv/bin/activate      (or: pip install -e '.[redis,client]')\n"
        "then run: python examples/redis-multi-instance/run.py"
    )

HERE = Path(__file__).resolve().parent
APP = HERE / "app.py"
HOST = "127.0.0.1"
ROOM = "lobby"
#: every wait of this script gives up after this many seconds
TIMEOUT = 10.0


def say(text: str = "") -> None:
    print(text, flush=True)


class DemoError(Exception):
    """Something in the demo did not happen as expected (printed, exit status 1)."""


# -- Redis ----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def redis_error(url: str) -> str | None:
    """None when Redis at ``url`` answers PING, else why not."""
    client = redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=1.0)
    try:
        client.ping()
    except (redis.RedisError, OSError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        client.close()
    return None


@contextlib.contextmanager
def throwaway_redis() -> Iterator[str]:
    """A ``redis-server`` on a free port with no persistence, stopped and removed on exit."""
    port = _free_port()
    workdir = tempfile.mkdtemp(prefix="wskit-example-redis-")
    args = ["redis-server", "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no", "--dir", workdir]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"redis://{HOST}:{port}/0"
    try:
        deadline = time.monotonic() + TIMEOUT
        while redis_error(url) is not None:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise DemoError(f"redis-server did not start on port {port}")
            time.sleep(0.05)
        say(f"  redis:      {url} (throwaway redis-server, pid {proc.pid})")
        yield url
    finally:
        _stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def find_redis() -> Iterator[str]:
    """``REDIS_URL`` when set and reachable, else a throwaway server; exits 1 when neither is possible."""
    url = os.environ.get("REDIS_URL")
    if url:
        problem = redis_error(url)
        if problem is None:
            say(f"  redis:      {url} (REDIS_URL)")
            yield url
            return
        say(f"  REDIS_URL={url} does not answer ({problem})")
    if shutil.which("redis-server") is None:
        raise SystemExit(
            "This demo needs Redis, and there is none:\n"
            + (f"  REDIS_URL={url} does not answer,\n" if url else "  REDIS_URL is not set,\n")
            + "  and redis-server is not on PATH to start a throwaway one.\n"
            "Install Redis (Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install redis),\n"
            "or point REDIS_URL at a running one: REDIS_URL=redis://host:6379/0 python "
            "examples/redis-multi-instance/run.py"
        )
    with throwaway_redis() as url:
        yield url


# -- the two instances ------------------------------------------------------------------------


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(TIMEOUT)


class Instance:
    """One process of ``app.py``; its output goes to ``<logdir>/<name>.log``."""

    def __init__(self, name: str, port: int, redis_url: str, namespace: str, logdir: Path) -> None:
        self.name = name
        self.port = port
        self.log_path = logdir / f"{name}.log"
        args = [sys.executable, str(APP), "--port", str(port), "--name", name]
        args += ["--redis", redis_url, "--namespace", namespace]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    @property
    def url(self) -> str:
        return f"ws://{HOST}:{self.port}/"

    def wait_ready(self) -> None:
        """Until ``/readyz`` says 200 (listening, and its broker link to Redis is up)."""
        deadline = time.monotonic() + 2 * TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DemoError(f"instance {self.name} exited with status {self.proc.returncode}")
            url = f"http://{HOST}:{self.port}/readyz"
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1.0) as response:
                if response.status == 200:
                    return
            time.sleep(0.1)
        raise DemoError(f"instance {self.name} did not become ready on port {self.port}")

    def log_tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
            return "\n".join(f"    {line}" for line in text)
        return "    (no log)"

    def stop(self) -> None:
        _stop(self.proc)


def pick_ports(wanted: list[int]) -> list[int]:
    ports: list[int] = []
    for port in wanted:
        if port and port not in ports and _port_is_free(port):
            ports.append(port)
        else:
            free = _free_port()
            if port:
                say(f"  (port {port} is taken: using {free})")
            ports.append(free)
    return ports


# -- the chat clients --------------------------------------------------------------------------


class Peer:
    """A chat user on one instance: requests by correlationId, everything else in a queue."""

    def __init__(self, nick: str, instance: Instance, ws: ClientConnection) -> None:
        self.nick = nick
        self.instance = instance
        self.ws = ws
        self.ids = itertools.count(1)
        self.waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        #: the last (offset, epoch) this peer received in the room
        self.position: tuple[int, str] | None = None
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, nick: str, instance: Instance) -> Peer:
        ws = await connect(instance.url, open_timeout=TIMEOUT, close_timeout=TIMEOUT)
        return cls(nick, instance, ws)

    @property
    def label(self) -> str:
        return f"[{self.instance.name}] {self.nick}"

    async def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in self.ws:
                msg: dict[str, Any] = json.loads(raw)
                meta = msg.get("meta") or {}
                if "offset" in meta:
                    self.position = (meta["offset"], meta["epoch"])
                future = self.waiting.pop(meta.get("correlationId", ""), None)
                if future is not None and not future.done():
                    future.set_result(msg)
                else:
                    self.inbox.put_nowait(msg)

    async def request(self, type_: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Send an RPC and return its answer's payload; an ``RPC_ERROR`` raises :class:`DemoError`."""
        cid = f"{self.nick}-{next(self.ids)}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiting[cid] = future
        await self.ws.send(json.dumps({"type": type_, "meta": {"correlationId": cid}, "payload": payload}))
        try:
            async with asyncio.timeout(TIMEOUT):
                answer = await future
        except TimeoutError:
            raise DemoError(f"{self.label}: no answer to {type_} within {TIMEOUT:.0f}s") from None
        if answer["type"] == "RPC_ERROR":
            raise DemoError(f"{self.label}: {type_} failed: {answer['payload']}")
        result: dict[str, Any] = answer["payload"]
        return result

    async def send(self, type_: str, payload: dict[str, Any]) -> None:
        await self.ws.send(json.dumps({"type": type_, "payload": payload}))

    async def expect(self, what: str, match: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """The next received frame that ``match`` accepts (others are skipped)."""
        try:
            async with asyncio.timeout(TIMEOUT):
                while True:
                    msg = await self.inbox.get()
                    if msg["type"] == "ERROR":
                        raise DemoError(f"{self.label}: error from the server: {msg['payload']}")
                    if match(msg):
                        return msg
        except TimeoutError:
            raise DemoError(f"{self.label} did not receive {what} within {TIMEOUT:.0f}s") from None

    async def expect_room_msg(self, nick: str, text: str) -> dict[str, Any]:
        def match(msg: dict[str, Any]) -> bool:
            p = msg.get("payload") or {}
            return msg["type"] == "ROOM_MSG" and p.get("nick") == nick and p.get("text") == text

        msg = await self.expect(f"ROOM_MSG {text!r} from {nick}", match)
        p, meta = msg["payload"], msg["meta"]
        say(f'{self.label} received ROOM_MSG from {p["nick"]}@{p["instance"]}: "{p["text"]}" (offset {meta["offset"]})')
        return msg

    async def join(self, **recovery: Any) -> dict[str, Any]:
        joined = await self.request("JOIN", {"room": ROOM, "nick": self.nick, **recovery})
        say(f"{self.label} joined {ROOM!r} (room position: offset {joined['offset']}, epoch {joined['epoch']})")
        return joined

    async def say(self, text: str) -> None:
        say(f'{self.label} says: "{text}"')
        await self.send("SAY", {"room": ROOM, "text": text})
        await self.expect_own_echo(text)

    async def expect_own_echo(self, text: str) -> None:
        # publishes include the sender: once our own copy is back, the publish went through Redis
        def match(msg: dict[str, Any]) -> bool:
            p = msg.get("payload") or {}
            return msg["type"] == "ROOM_MSG" and p.get("nick") == self.nick and p.get("text") == text

        await self.expect(f"its own {text!r}", match)

    async def close(self) -> None:
        await self.ws.close()
        self.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.reader


def _presence(nick: str, event: str) -> Callable[[dict[str, Any]], bool]:
    def match(msg: dict[str, Any]) -> bool:
        p = msg.get("payload") or {}
        return msg["type"] == "$ws:presence" and p.get("event") == event and p.get("userId") == nick

    return match


async def demo(a: Instance, b: Instance) -> None:
    """The scripted conversation; raises :class:`DemoError` when something does not cross."""
    say("\n-- a message crossing instances through Redis --")
    ada = await Peer.connect("ada", a)
    bob = await Peer.connect("bob", b)
    bob_again: Peer | None = None
    try:
        await ada.join()
        await bob.join()
        event = await ada.expect("bob's presence join", _presence("bob", "join"))
        say(f"{ada.label} got $ws:presence: bob joined (instance {event['payload']['data']['instance']})")

        await ada.say("hello from instance A")
        await bob.expect_room_msg("ada", "hello from instance A")
        await bob.say("hi ada, this is instance B")
        await ada.expect_room_msg("bob", "hi ada, this is instance B")

        say("\n-- presence across instances --")
        for peer in (ada, bob):
            who = await peer.request("WHO", {"room": ROOM})
            listed = ", ".join(f"{m['nick']}@{m['instance']}" for m in who["members"])
            say(f"{peer.label} asks WHO is in {ROOM!r}: {listed}")
            if {m["instance"] for m in who["members"]} != {a.name, b.name}:
                raise DemoError(f"WHO should list members of both instances, got {who['members']}")

        say("\n-- history and recovery --")
        if bob.position is None:
            raise DemoError("bob received no offset (history is not enabled?)")
        offset, epoch = bob.position
        await bob.close()
        say(f"{bob.label} disconnects (last seen: offset {offset})")
        await ada.expect("bob's presence leave", _presence("bob", "leave"))
        missed = ["are you still there?", "bob missed this one"]
        for text in missed:
            await ada.say(text)
        bob_again = await Peer.connect("bob", b)
        say(f"{bob_again.label} reconnects and re-joins with offset {offset} and epoch {epoch}")
        await bob_again.join(offset=offset, epoch=epoch)
        for text in missed:
            await bob_again.expect_room_msg("ada", text)
    finally:
        for peer in [ada, bob] + ([bob_again] if bob_again is not None else []):
            await peer.close()
    say("\nOK: messages, presence and history crossed between the two instances through Redis.")


async def keep_running(instances: list[Instance]) -> None:
    a, b = instances
    join = '{"type":"JOIN","meta":{"correlationId":"1"},"payload":{"room":"lobby","nick":"me"}}'
    say(f"\nBoth instances keep running; Ctrl-C stops them.  A: {a.url}   B: {b.url}")
    say("With websocat (https://github.com/vi/websocat), in two terminals:")
    say(f"  websocat {a.url}      and      websocat {b.url}")
    say(f"  then type:  {join}")
    say('  and:        {"type":"SAY","payload":{"room":"lobby","text":"hello"}}')
    say("Or in a browser's developer console (an about:blank tab will do):")
    say(
        f'  ws = new WebSocket("{b.url}"); ws.onmessage = (e) => console.log(e.data); '
        "ws.onopen = () => { ws.send(JSON.stringify({type: 'JOIN', meta: {correlationId: '1'}, "
        "payload: {room: 'lobby', nick: 'web'}})); ws.send(JSON.stringify({type: 'SAY', "
        "payload: {room: 'lobby', text: 'hi from the browser'}})); }"
    )
    say(f"Server logs (removed on exit): {a.log_path} and {b.log_path}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.5):
                await stop.wait()
        dead = [i for i in instances if i.proc.poll() is not None]
        if dead:
            raise DemoError(f"instance {dead[0].name} exited with status {dead[0].proc.returncode}")
    say("\nstopping")


def stop_all(instances: list[Instance]) -> None:
    for instance in instances:
        instance.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--keep", action="store_true", help="keep both instances running until Ctrl-C")
    parser.add_argument("--ports", type=int, nargs=2, default=[8001, 8002], metavar=("A", "B"))
    args = parser.parse_args()
    say("wskit: two instances, one Redis")
    instances: list[Instance] = []
    with contextlib.ExitStack() as stack:
        logdir = Path(tempfile.mkdtemp(prefix="wskit-example-logs-"))
        stack.callback(shutil.rmtree, logdir, True)
        try:
            redis_url = stack.enter_context(find_redis())
            namespace = f"wskit-example-{uuid.uuid4().hex[:8]}"  # never collides with other users of that Redis
            stack.callback(stop_all, instances)
            for name, port in zip(("A", "B"), pick_ports(args.ports), strict=True):
                instances.append(Instance(name, port, redis_url, namespace, logdir))
            for instance in instances:
                instance.wait_ready()
                say(f"  instance {instance.name}: {instance.url} (pid {instance.proc.pid}, namespace {namespace})")
            asyncio.run(demo(*instances))
            if args.keep:
                asyncio.run(keep_running(instances))
        except DemoError as exc:
            say(f"\nFAILED: {exc}")
            for instance in instances:
                say(f"  last lines of instance {instance.name}'s log ({instance.log_path}):\n{instance.log_tail()}")
            return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
