"""The CI rule of :mod:`tests.support.ci`: a missing service or package skips locally, fails under CI."""

from __future__ import annotations

import pytest
from tests.support.ci import in_ci, require_module, unavailable

__all__: list[str] = []


@pytest.mark.parametrize("value", ["true", "True", "TRUE", " true "])
def test_ci_true_in_any_case_turns_the_skip_into_a_failure(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """CI=true, whatever its case, makes unavailable() and a missing module fail the test."""
    monkeypatch.setenv("CI", value)
    assert in_ci()
    with pytest.raises(pytest.fail.Exception):
        unavailable("no widget")
    with pytest.raises(pytest.fail.Exception, match="not_a_module_of_ours"):
        require_module("not_a_module_of_ours", reason="the widget test needs it")


@pytest.mark.parametrize("value", [None, "", "false", "1", "yes"])
def test_outside_ci_a_missing_dependency_skips(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    """Without CI=true the same calls skip the test, naming what is missing."""
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert not in_ci()
    with pytest.raises(pytest.skip.Exception, match="no widget"):
        unavailable("no widget")
    with pytest.raises(pytest.skip.Exception, match="not_a_module_of_ours"):
        require_module("not_a_module_of_ours", reason="the widget test needs it")


def test_an_installed_module_is_returned() -> None:
    """require_module() hands back the imported module when it is there."""
    assert require_module("json", reason="always there").dumps([]) == "[]"
