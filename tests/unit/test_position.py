"""The one rule of history sequencing (wskit.protocol.step), used by hub, recovery and Redis."""

from __future__ import annotations

import pytest

from wskit.protocol import Position, Step, step

AT_5 = Position(5, "e1")


@pytest.mark.parametrize(
    ("position", "offset", "epoch", "expected"),
    [
        (None, 1, "e1", Step.FIRST),
        (None, 9, "e1", Step.FIRST),
        (AT_5, 6, "e1", Step.NEXT),
        (AT_5, 5, "e1", Step.DUPLICATE),
        (AT_5, 1, "e1", Step.DUPLICATE),
        (AT_5, 7, "e1", Step.GAP),  # a gap of exactly one offset
        (AT_5, 100, "e1", Step.GAP),
        (AT_5, 1, "e2", Step.NEW_EPOCH),
        (AT_5, 6, "e2", Step.NEW_EPOCH),
    ],
)
def test_step(position: Position | None, offset: int, epoch: str, expected: Step) -> None:
    """Each kind of successor is told apart, at its boundaries."""
    assert step(position, offset, epoch) is expected


def test_position_unpacks_as_clients_see_it() -> None:
    """``offset, epoch = position``: the order ctx.subscribe has always returned."""
    offset, epoch = Position(3, "e")
    assert (offset, epoch) == (3, "e")
