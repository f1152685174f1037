"""The official parser (@asyncapi/parser, run by validate_asyncapi.mjs) accepts the documents
of the chat demo and of a router using every feature; a document it rejects fails the suite.
Warnings are printed (pytest -rP shows them), errors fail. One run of the parser checks every
document of this module (starting it costs more than a parse)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from examples.chat.app import ChatLimits, create_router
from tests.export.apps import full_router
from tests.export.support import official_parser

from wskit import Router
from wskit.config import Settings
from wskit.export.asyncapi import asyncapi_document

ROUTERS: dict[str, Callable[[], Router[Any]]] = {
    "chat": lambda: create_router(ChatLimits(recoverable=True)),
    "chat-plain": create_router,
    "full-msgspec": full_router,
    "empty": Router,
}
AUTH = {"anonymous": False, "jwt": True}


def _broken() -> dict[str, Any]:
    """An operation naming a message its channel lacks: the parser must call it an error."""
    document = asyncapi_document(full_router(), settings=Settings())
    document["operations"]["receive_STATS"]["messages"] = [{"$ref": "#/components/messages/STATS"}]
    return document


@pytest.fixture(scope="module")
def diagnostics(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    documents = {
        f"{name}-{auth}": asyncapi_document(make(), settings=Settings(), auth=on)
        for name, make in ROUTERS.items()
        for auth, on in AUTH.items()
    }
    documents["broken"] = _broken()
    return official_parser(documents, tmp_path_factory.mktemp("asyncapi"))


@pytest.mark.parametrize("auth", list(AUTH))
@pytest.mark.parametrize("name", list(ROUTERS))
def test_the_official_parser_accepts_the_document(
    name: str, auth: str, diagnostics: dict[str, list[dict[str, Any]]]
) -> None:
    """No error diagnostics, with and without the JWT security schemes; the only remark the
    parser makes is that AsyncAPI 3.1 exists (3.0.0 is what the issue asks for)."""
    found = diagnostics[f"{name}-{auth}"]
    for diagnostic in found:
        print(f"{diagnostic['severity']}: {diagnostic['code']}: {diagnostic['message']} at {diagnostic['path']}")
    assert [d for d in found if d["severity"] == "error"] == []
    assert {d["code"] for d in found} <= {"asyncapi-latest-version"}


def test_a_broken_document_fails(diagnostics: dict[str, list[dict[str, Any]]]) -> None:
    """The harness can fail: the broken document gets an error diagnostic."""
    errors = {d["code"] for d in diagnostics["broken"] if d["severity"] == "error"}
    assert "asyncapi3-operation-messages-from-referred-channel" in errors
