"""Choosing serve()'s transport: WSKIT_TRANSPORT / ``transport=``, and what picows cannot serve."""

from __future__ import annotations

import pytest

from wskit import Router, Server
from wskit.config import ConfigError, load_settings


def test_default_is_aiohttp_and_picows_is_chosen_by_keyword_or_environment() -> None:
    assert load_settings(env={}).transport == "aiohttp"
    assert load_settings({"transport": "picows"}, env={}).transport == "picows"
    assert load_settings(env={"WSKIT_TRANSPORT": "PicoWS"}).transport == "picows"


def test_a_bad_transport_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="WSKIT_TRANSPORT"):
        load_settings(env={"WSKIT_TRANSPORT": "tornado"})


@pytest.mark.parametrize("option", ["static_files", "http_routes"])
def test_picows_refuses_what_it_cannot_serve(option: str, tmp_path: object) -> None:
    """static_files and http_routes are aiohttp's: with picows the server fails at start,
    saying so, instead of serving without them."""
    given = {"/x": "file.txt"} if option == "static_files" else {"/x": lambda request: None}
    with pytest.raises(ConfigError, match=f"picows cannot serve {option}"):
        Server(Router(), transport="picows", env={}, **{option: given})  # type: ignore[arg-type]
    Server(Router(), env={}, **{option: given})  # type: ignore[arg-type]  # aiohttp serves them
