"""The correlationId fast path writes exactly what the JSON encoder would read back."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from wskit.context import _json_str, _meta_bytes


@settings(max_examples=2000, deadline=None, database=None)
@given(st.text())
def test_any_string_round_trips(text: str) -> None:
    """Whatever the id, the bytes are valid JSON for that same string."""
    assert json.loads(_json_str(text)) == text


def test_meta_with_correlation_id_first() -> None:
    """RPC answers carry the correlationId first, then the handler's own meta keys."""
    assert json.loads(_meta_bytes({"tag": "t1"}, "c-1")) == {"correlationId": "c-1", "tag": "t1"}
    assert _meta_bytes(None, "c-1") == b'{"correlationId":"c-1"}'
