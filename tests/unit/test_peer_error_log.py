"""PeerErrorLog: what a peer does wrong is one short, rate-limited line; a bug keeps its traceback."""

from __future__ import annotations

import logging

import pytest
from aiohttp.http_exceptions import BadStatusLine

from wskit.transports.aiohttp_log import PeerErrorLog


def _raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


def test_bad_requests_are_one_line_without_traceback_and_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    """15 bad requests with a burst of 10: 10 INFO lines naming the peer and the error class,
    none with a traceback or the request's bytes; the next line after the window counts the 5."""
    log = PeerErrorLog(logging.getLogger("wskit.test.http"), burst=10, interval_s=3600)
    caplog.set_level(logging.INFO, logger="wskit.test.http")
    for _ in range(15):
        exc = _raised(BadStatusLine("GET /?access_token=SECRET HTTP/1.1 junk"))
        log.exception("Error handling request from %s", "203.0.113.5", exc_info=exc)
    assert len(caplog.records) == 10
    record = caplog.records[0]
    assert record.levelno == logging.INFO and record.exc_info is None
    assert record.getMessage() == "refused a bad HTTP request from 203.0.113.5 (400 BadStatusLine)"
    assert "SECRET" not in caplog.text
    assert log.suppressed == 5 and log.peer_errors == 15
    log.budget.interval_s = 0.0  # the window is over
    log.exception("Error handling request from %s", "203.0.113.5", exc_info=_raised(BadStatusLine("x")))
    assert caplog.records[-1].getMessage().endswith("(5 more not logged)")


def test_peer_resets_are_debug_and_bugs_keep_their_traceback(caplog: pytest.LogCaptureFixture) -> None:
    """A vanished peer is a DEBUG line; any other exception passes through as aiohttp logged it."""
    log = PeerErrorLog(logging.getLogger("wskit.test.http2"))
    caplog.set_level(logging.DEBUG, logger="wskit.test.http2")
    log.exception("Unhandled exception", exc_info=_raised(ConnectionResetError("reset")))
    log.exception("Error handling request from %s", "198.51.100.7", exc_info=_raised(KeyError("bug")))
    reset, bug = caplog.records
    assert reset.levelno == logging.DEBUG and reset.exc_info is None
    assert bug.levelno == logging.ERROR and bug.exc_info is not None
    assert bug.getMessage() == "Error handling request from 198.51.100.7"


def test_a_log_budget_counts_what_it_left_out() -> None:
    """LogBudget(burst=2): two lines, then silence (counted), and the next window's first line
    says how many were left out."""
    from wskit.logs import LogBudget

    budget = LogBudget(burst=2, interval_s=3600)
    assert [budget.take() for _ in range(5)] == ["", "", None, None, None]
    assert budget.suppressed == 3
    budget.interval_s = 0.0
    assert budget.take() == " (3 more not logged)"
    assert budget.suppressed == 0
