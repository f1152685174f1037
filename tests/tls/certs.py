"""Certificates for the wss:// tests, made by ``trustme``, and what a handshake shows of them.

A :class:`Issuer` is a throwaway CA; :meth:`Issuer.install` writes a leaf certificate for
127.0.0.1 (its chain) and its key where a server reads them, replacing the files the way a
renewal does (a new file renamed over the old: a reader never sees half a file).
:func:`client_context` trusts the given issuers; :func:`served_certificate` opens a TLS
connection and returns the certificate the server presented, as DER.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from pathlib import Path

import trustme
from cryptography.hazmat.primitives import serialization

__all__ = ["Issuer", "Pair", "client_context", "served_certificate"]


class Pair:
    """Where a server's certificate chain and key live."""

    def __init__(self, directory: Path) -> None:
        self.cert = directory / "server.crt"
        self.key = directory / "server.key"

    def env(self) -> dict[str, str]:
        """The settings that serve this pair (``TLS_CERT_FILE``, ``TLS_KEY_FILE``)."""
        return {"TLS_CERT_FILE": str(self.cert), "TLS_KEY_FILE": str(self.key)}


class Issuer:
    """A CA of its own; each :meth:`install` issues a new leaf for 127.0.0.1 (new key, new serial)."""

    def __init__(self) -> None:
        self.ca = trustme.CA()
        #: the DER of the last leaf installed (what a handshake must show after a reload)
        self.der = b""

    def install(self, pair: Pair, *, passphrase: bytes | None = None) -> bytes:
        """Issue a leaf and put its chain and key in ``pair``'s files, each replaced at once
        (the key encrypted with ``passphrase`` when given); returns the leaf's DER."""
        leaf = self.ca.issue_cert("127.0.0.1", "localhost")
        chain = b"".join(blob.bytes() for blob in leaf.cert_chain_pems)
        key = leaf.private_key_pem.bytes()
        _replace(pair.cert, chain)
        _replace(pair.key, key if passphrase is None else _encrypted(key, passphrase))
        self.der = ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode())
        return self.der

    def leaf_files(self) -> tuple[bytes, bytes]:
        """A new leaf's chain and key, as bytes (for writing them some other way)."""
        leaf = self.ca.issue_cert("127.0.0.1")
        return b"".join(blob.bytes() for blob in leaf.cert_chain_pems), leaf.private_key_pem.bytes()


def _encrypted(key: bytes, passphrase: bytes) -> bytes:
    """``key`` (PEM) as an encrypted PKCS#8 PEM, as ``openssl pkey -aes256`` writes it."""
    loaded = serialization.load_pem_private_key(key, password=None)
    return loaded.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    )


def _replace(path: Path, data: bytes) -> None:
    temporary = path.with_suffix(path.suffix + ".new")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def client_context(*issuers: Issuer) -> ssl.SSLContext:
    """A client context that trusts exactly ``issuers`` (and checks the host name)."""
    context = ssl.create_default_context()
    context.load_verify_locations(cadata="".join(issuer.ca.cert_pem.bytes().decode() for issuer in issuers))
    return context


async def served_certificate(port: int, context: ssl.SSLContext, *, host: str = "127.0.0.1") -> bytes:
    """The DER certificate a new TLS handshake with ``host:port`` gets (raises if it fails)."""
    async with asyncio.timeout(5):
        _, writer = await asyncio.open_connection(host, port, ssl=context)
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        der: bytes = ssl_object.getpeercert(binary_form=True)
        return der
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
            async with asyncio.timeout(2):
                await writer.wait_closed()
