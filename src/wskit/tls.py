"""TLS for ``serve()``: the server's ``SSLContext``, and a reloader that renews its certificate.

Certificates are renewed while the server runs (ACME every 60 to 90 days, a secret rotated by
Kubernetes), and a restart to pick them up would cut every open connection.
:class:`CertificateReloader` owns the one context the listener was created with and loads a
renewed chain *into it*: OpenSSL copies the certificate into each connection when its
handshake starts, so new handshakes get the new certificate and open connections keep theirs.
Checked under the stock asyncio loop and under uvloop (both hand the same context to every
accepted socket); ``tests/tls`` proves it on every run.

A reload happens on ``SIGHUP`` (``serve()`` wires it) and when the files change
(``TLS_RELOAD_INTERVAL_S``: a ``stat()`` of both files per interval; 0 turns polling off).

A failed load into a live context is not harmless: OpenSSL has replaced the certificate by
then and drops the key that no longer matches, and every later handshake fails. So a reload
reads both files once, proves the pair on a scratch context, and only then loads those same
bytes into the live one. A pair that does not load (half written, garbage, a key that is not
the certificate's) is logged once, naming both files, and the certificate already loaded stays.
A proven pair can still fail to load into the live context (out of file descriptors when
OpenSSL opens the key): then the pair loaded before, whose bytes are kept, is put back.

A private key protected by a passphrase is refused (at start and on reload) instead of being
loaded: OpenSSL would ask for the passphrase on the terminal, blocking the event loop (and
a service has no one to type it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

from wskit.config import ConfigError, Settings

__all__ = ["MAX_PEM_BYTES", "CertificateReloader", "server_context"]

log = logging.getLogger("wskit.server")

#: the largest certificate or key file read: a chain is a few kilobytes, and a path pointed at
#: something else must not be read into memory whole
MAX_PEM_BYTES = 1024 * 1024

#: what identifies a file's version without reading it: device, inode, size, mtime (ns);
#: None when it cannot be stat()ed (being replaced, removed)
Signature = tuple[int, int, int, int] | None


def server_context() -> ssl.SSLContext:
    """A server-side context with the standard library's defaults for serving (TLS 1.2+)."""
    return ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)


class CertificateReloader:
    """The server's TLS context (:attr:`context`) for ``cert_file``/``key_file``, and its reloads.

    The first load happens here and raises :class:`~wskit.config.ConfigError` naming the files
    when the pair does not load. :meth:`reload` loads the files again now (``SIGHUP``);
    :meth:`start` polls them every ``interval_s`` seconds (0: never) and reloads on a change.
    :attr:`reloads` and :attr:`failures` count the outcomes; :attr:`not_after` is the loaded
    certificate's expiry (ISO 8601, UTC), when it could be read.
    """

    def __init__(self, cert_file: str, key_file: str, *, interval_s: float = 30.0) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self.interval_s = interval_s
        #: the context the listener serves with; reloads change it in place
        self.context = server_context()
        #: successful reloads (the first load not counted)
        self.reloads = 0
        #: reloads refused (the certificate loaded before stayed)
        self.failures = 0
        self.not_after: str | None = None
        self._seen = self._signature()
        self._timer: asyncio.TimerHandle | None = None
        #: the chain and key loaded in :attr:`context` (put back when a reload half-loads)
        self._pair = (b"", b"")
        try:
            cert, key = _read(cert_file), _read(key_file)
            self._install(cert, key)
        except ConfigError:
            raise  # an encrypted key: its message says so, naming the file
        except (OSError, ValueError, ssl.SSLError) as exc:
            raise ConfigError(
                f"TLS_CERT_FILE={cert_file} / TLS_KEY_FILE={key_file} do not load as a certificate and its key: {exc}"
            ) from None

    @classmethod
    def from_settings(cls, settings: Settings) -> CertificateReloader | None:
        """The reloader for ``TLS_CERT_FILE``/``TLS_KEY_FILE``; None without TLS."""
        if not settings.tls_cert_file or not settings.tls_key_file:
            return None
        return cls(settings.tls_cert_file, settings.tls_key_file, interval_s=settings.tls_reload_interval_s)

    # -- reloading -------------------------------------------------------------------------

    def reload(self, trigger: str = "request") -> bool:
        """Load the files again into :attr:`context` (new handshakes only); False, with one
        error logged, when they do not load (then the previous certificate stays).

        ``trigger`` says why, in the log line (``SIGHUP``, ``file change``).
        """
        self._seen = self._signature()  # before reading: a write during the read is a new change
        try:
            cert, key = _read(self.cert_file), _read(self.key_file)
            _prove(cert, key, self._no_passphrase)
        except (OSError, ValueError, ssl.SSLError) as exc:
            self._failed(trigger, exc, "new connections keep the certificate loaded before")
            return False
        try:
            self._install(cert, key)
        except (OSError, ValueError, ssl.SSLError) as exc:
            # the live context may hold the new certificate without its key by now
            put_back = self._put_back()
            self._seen = (None, None)  # a passing cause (no file descriptors): the next poll tries again
            self._failed(
                trigger,
                exc,
                "the certificate loaded before was put back"
                if put_back
                else "putting the certificate loaded before back failed too: new handshakes fail until a reload works",
            )
            return False
        self.reloads += 1
        log.info(
            "TLS certificate reloaded (%s) from %s, valid until %s",
            trigger,
            self.cert_file,
            self.not_after or "?",
            extra={
                "event": "tls_reload",
                "trigger": trigger,
                "cert_file": self.cert_file,
                "key_file": self.key_file,
                "not_after": self.not_after,
            },
        )
        return True

    def check(self) -> bool | None:
        """Reload if either file changed since the last look; None when neither did."""
        if self._signature() == self._seen:
            return None
        return self.reload("file change")

    def _failed(self, trigger: str, exc: BaseException, outcome: str) -> None:
        self.failures += 1
        log.error(
            "TLS reload (%s) failed: %s with %s: %s; %s",
            trigger,
            self.cert_file,
            self.key_file,
            exc,
            outcome,
            extra={
                "event": "tls_reload",
                "trigger": trigger,
                "cert_file": self.cert_file,
                "key_file": self.key_file,
                "error": str(exc),
            },
        )

    def _install(self, cert: bytes, key: bytes) -> None:
        """Load a proven pair into the live context (both files are read once, by the caller)."""
        with _as_files(cert, key) as (cert_path, key_path):
            self.context.load_cert_chain(cert_path, key_path, password=self._no_passphrase)
            self.not_after = _not_after(cert_path)
        self._pair = (cert, key)

    def _put_back(self) -> bool:
        """Load the pair that served before a failed load again; False if that fails too."""
        try:
            self._install(*self._pair)
        except (OSError, ValueError, ssl.SSLError):
            return False
        return True

    def _no_passphrase(self) -> NoReturn:
        """OpenSSL's question for a key's passphrase, answered by refusing the key: without
        an answer of ours, OpenSSL asks on the terminal and the loop waits for a reply."""
        raise ConfigError(
            f"encrypted private keys are not supported: TLS_KEY_FILE {self.key_file} asks for a passphrase; "
            "store the key decrypted (openssl pkey -in KEY -out PLAIN), readable by the server's user only"
        )

    def _signature(self) -> tuple[Signature, Signature]:
        return _stat(self.cert_file), _stat(self.key_file)

    # -- polling ---------------------------------------------------------------------------

    def start(self) -> None:
        """Look at the files every ``interval_s`` seconds on the running loop (one timer)."""
        if self.interval_s > 0 and self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.interval_s, self._tick)

    def stop(self) -> None:
        """Stop looking (the context stays usable)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        try:
            self.check()
        except Exception:
            log.exception("TLS reload check failed")
        finally:
            if self._timer is not None:  # not stopped meanwhile
                self._timer = asyncio.get_running_loop().call_later(self.interval_s, self._tick)


def _stat(path: str) -> Signature:
    try:
        st = os.stat(path)  # follows links: a Kubernetes secret swaps its ..data link
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _read(path: str) -> bytes:
    with open(path, "rb") as file:
        data = file.read(MAX_PEM_BYTES + 1)
    if len(data) > MAX_PEM_BYTES:
        raise ValueError(f"{path} is larger than {MAX_PEM_BYTES} bytes")
    if not data.strip():
        raise ValueError(f"{path} is empty")
    return data


def _prove(cert: bytes, key: bytes, password: Callable[[], NoReturn]) -> None:
    """Raise unless ``cert`` and ``key`` load together (on a context nobody serves with);
    ``password`` answers OpenSSL's question for a passphrase."""
    with _as_files(cert, key) as (cert_path, key_path):
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert_path, key_path, password=password)


@contextlib.contextmanager
def _as_files(cert: bytes, key: bytes) -> Iterator[tuple[str, str]]:
    """Paths holding exactly these bytes, for OpenSSL, which loads chains from files only:
    the same bytes are proven and then loaded, whatever happens to the real files meanwhile.

    On Linux, anonymous memory files (``memfd``, read through ``/proc/self/fd``): the key
    never touches a disk, and a read-only root file system (a hardened container) is no
    obstacle. Elsewhere, a private temporary directory (0700, files 0600) removed at once.
    """
    fds = _memory_files(2)
    if fds:
        try:
            for fd, data in zip(fds, (cert, key), strict=True):
                with os.fdopen(fd, "wb", closefd=False) as file:
                    file.write(data)
            yield f"/proc/self/fd/{fds[0]}", f"/proc/self/fd/{fds[1]}"
        finally:
            for fd in fds:
                os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="wskit-tls-") as directory:
        cert_path, key_path = Path(directory, "cert.pem"), Path(directory, "key.pem")
        for path, data in ((cert_path, cert), (key_path, key)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as file:
                file.write(data)
        yield str(cert_path), str(key_path)


def _memory_files(count: int) -> list[int]:
    """``count`` memfd descriptors readable by path, or [] where there are none (not Linux,
    no /proc, or a sandbox that forbids them)."""
    if not hasattr(os, "memfd_create") or not os.path.isdir("/proc/self/fd"):
        return []
    fds: list[int] = []
    try:
        for _ in range(count):
            fds.append(os.memfd_create("wskit-tls"))
    except OSError:
        for fd in fds:
            os.close(fd)
        return []
    return fds


def _not_after(cert_path: str) -> str | None:
    """The first certificate's expiry as ISO 8601 UTC, or None when it cannot be read.

    The standard library decodes a certificate file only through a private helper of its own
    tests; when that is missing or fails, the log line goes without the date."""
    decode: Any = getattr(ssl, "_ssl", None)
    decode = getattr(decode, "_test_decode_cert", None)
    if decode is None:
        return None
    try:
        seconds = ssl.cert_time_to_seconds(decode(cert_path)["notAfter"])
    except Exception:  # noqa: BLE001 - a missing date costs the log field, nothing else
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))
