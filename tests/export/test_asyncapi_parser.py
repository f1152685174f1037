"""The official parser (@asyncapi/parser, run by validate_asyncapi.mjs) accepts the documents
of the chat demo and of a router using every feature; a document it rejects fails the suite.
Warnings are printed (pytest -rP shows them), errors fail."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from examples.chat.app import ChatLimits, create_router
from tests.export.apps import full_router
from tests.export.support import official_parser

from wskit import Router
from wskit.config import Settings
from wskit.export.asyncapi import asyncapi_document


def _checked(document: dict[str, Any], tmp_path: Path) -> list[dict[str, Any]]:
    status, diagnostics = official_parser(document, tmp_path)
    errors = [d for d in diagnostics if d["severity"] == "error"]
    for diagnostic in diagnostics:
        print(f"{diagnostic['severity']}: {diagnostic['code']}: {diagnostic['message']} at {diagnostic['path']}")
    assert errors == [] and status == 0
    return diagnostics


ROUTERS = {
    "chat": lambda: create_router(ChatLimits(recoverable=True)),
    "chat-plain": create_router,
    "full-msgspec": full_router,
}


@pytest.mark.parametrize("auth", [False, True], ids=["anonymous", "jwt"])
@pytest.mark.parametrize("name", list(ROUTERS))
def test_the_official_parser_accepts_the_document(name: str, auth: bool, tmp_path: Path) -> None:
    """No error diagnostics, with and without the JWT security schemes."""
    document = asyncapi_document(ROUTERS[name](), settings=Settings(), auth=auth)
    diagnostics = _checked(document, tmp_path)
    # the only remark the parser makes is that AsyncAPI 3.1 exists (we write 3.0.0 as asked)
    assert {d["code"] for d in diagnostics} <= {"asyncapi-latest-version"}


def test_a_router_without_routes_is_a_valid_document(tmp_path: Path) -> None:
    """An empty router still documents the framework's frames."""
    _checked(asyncapi_document(Router(), settings=Settings()), tmp_path)


def test_a_broken_document_fails(tmp_path: Path) -> None:
    """The harness can fail: an operation naming a message its channel lacks is an error."""
    document = asyncapi_document(full_router(), settings=Settings())
    document["operations"]["receive_STATS"]["messages"] = [{"$ref": "#/components/messages/STATS"}]
    status, diagnostics = official_parser(document, tmp_path)
    assert status == 1
    assert "asyncapi3-operation-messages-from-referred-channel" in {
        d["code"] for d in diagnostics if d["severity"] == "error"
    }
