"""Choosing serve()'s transport: WSKIT_TRANSPORT / ``transport=`` (auto, aiohttp, picows),
and what picows cannot serve: refused when asked for, an explicit fallback under auto."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from wskit import Router, Server
from wskit.config import ConfigError, load_settings


def test_default_is_auto_and_a_host_is_chosen_by_keyword_or_environment() -> None:
    assert load_settings(env={}).transport == "auto"
    assert load_settings({"transport": "picows"}, env={}).transport == "picows"
    assert load_settings(env={"WSKIT_TRANSPORT": "PicoWS"}).transport == "picows"
    assert load_settings(env={"WSKIT_TRANSPORT": "aiohttp"}).transport == "aiohttp"


def test_a_bad_transport_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="WSKIT_TRANSPORT"):
        load_settings(env={"WSKIT_TRANSPORT": "tornado"})


def test_auto_serves_with_picows_when_installed() -> None:
    """picows is installed with the test extras (wskit[fast]): auto picks it, as uvicorn picks
    uvloop and httptools."""
    assert Server(Router(), env={}).transport_name == "picows"
    assert Server(Router(), env={"WSKIT_TRANSPORT": "aiohttp"}).transport_name == "aiohttp"
    assert Server(Router(), transport="aiohttp", env={}).transport_name == "aiohttp"


def _given(option: str) -> dict[str, Any]:
    given: Any = {"/x": "file.txt"} if option == "static_files" else {"/x": lambda request: None}
    return {option: given}


@pytest.mark.parametrize("option", ["static_files", "http_routes"])
def test_picows_refuses_what_it_cannot_serve(option: str) -> None:
    """static_files and http_routes are aiohttp's: asked for picows, the server fails at start,
    saying so, instead of serving without them."""
    with pytest.raises(ConfigError, match=f"picows cannot serve {option}"):
        Server(Router(), transport="picows", env={}, **_given(option))


@pytest.mark.parametrize("option", ["static_files", "http_routes"])
def test_auto_falls_back_to_aiohttp_for_them_and_says_so(option: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="wskit.server"):
        server = Server(Router(), env={}, **_given(option))
    assert server.transport_name == "aiohttp"
    said = [r.getMessage() for r in caplog.records if r.name == "wskit.server"]
    assert any("serving with aiohttp" in line and option in line for line in said), said
