"""The test helpers' CI rule: without the Redis a test needs, skip locally, fail under CI (any case)."""

from __future__ import annotations

import pytest
import tests.support.redis_server as support

__all__: list[str] = []


@pytest.mark.parametrize("value", ["true", "True", "TRUE", " true "])
def test_missing_redis_fails_under_ci(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """CI=true in any case makes a missing Redis a failure (pytest.fail), not a skip."""
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception):
        support.no_redis("no redis")


@pytest.mark.parametrize("value", [None, "", "false", "0"])
def test_missing_redis_skips_outside_ci(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    """Outside CI a missing Redis skips the test."""
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.skip.Exception):
        support.no_redis("no redis")


def test_no_server_and_no_url_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """redis_or_skip() without redis-server and without REDIS_URL fails under CI."""
    monkeypatch.setattr(support, "REDIS_SERVER", None)
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("CI", "True")
    with pytest.raises(pytest.fail.Exception):
        support.redis_or_skip()


def test_own_server_is_required_under_ci_even_with_redis_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """A test that must kill its Redis cannot use REDIS_URL: RedisServer() without redis-server fails under CI."""
    monkeypatch.setattr(support, "REDIS_SERVER", None)
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("CI", "TRUE")
    assert support.redis_or_skip() == "redis://127.0.0.1:1/0"
    with pytest.raises(pytest.fail.Exception):
        support.RedisServer()
