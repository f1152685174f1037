"""router.emits() and the one-payload-per-type rule (issue 18): the router knows every message
the server may send, and refuses a type declared twice with different payloads, whichever
registration comes second and whichever way the messages travel."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from wskit import Context, Router, message, rpc
from wskit.errors import UsageError


class Text(BaseModel):
    text: str


class Other(BaseModel):
    n: int


Say = message("SAY", Text)
Said = message("SAID", Text)
Tick = message("TICK", Other)
GetText = rpc("GET_TEXT", Text, "TEXT", Text)


async def _handler(ctx: Context[Any]) -> None:
    return None


def test_outbound_has_rpc_responses_and_emitted_messages_with_their_topics() -> None:
    router: Router[Any] = Router()
    router.rpc(GetText, _handler)
    router.emits(Said)
    router.emits(Tick, topics=["ticks:*"])
    router.emits(Tick, topics=["ticks:*", "prices"])  # again: topics added, not repeated
    assert set(router.outbound) == {"TEXT", "SAID", "TICK"}
    assert router.outbound["TICK"] is Tick
    assert router.emitted_topics == {"SAID": (), "TICK": ("ticks:*", "prices")}
    assert set(router.declared()) == {"GET_TEXT", "TEXT", "SAID", "TICK"}


def test_the_same_declaration_may_travel_both_ways() -> None:
    router: Router[Any] = Router()
    router.on(Say, _handler)
    router.emits(Say)  # the server relays SAY back: same payload, fine
    router.emits(message("SAY", Text))  # an equal declaration (same model) is the same message
    assert router.outbound["SAY"].payload_model is Text


@pytest.mark.parametrize("order", ["route first", "emits first"])
def test_an_event_and_an_rpc_response_sharing_a_type_with_other_payloads_is_refused(order: str) -> None:
    router: Router[Any] = Router()
    clash = message("TEXT", Other)
    with pytest.raises(UsageError) as raised:
        if order == "route first":
            router.rpc(GetText, _handler)
            router.emits(clash)
        else:
            router.emits(clash)
            router.rpc(GetText, _handler)
    text = str(raised.value)
    assert "'TEXT'" in text and "different payloads" in text
    assert "Other" in text and "Text" in text and "rpc 'GET_TEXT'" in text
    # nothing half-registered
    assert ("GET_TEXT" in router.routes) == (order == "route first")


def test_a_routed_type_and_an_rpc_response_of_that_type_with_another_payload_is_refused() -> None:
    router: Router[Any] = Router()
    router.on(message("TEXT", Other), _handler)
    with pytest.raises(UsageError, match="'TEXT' is declared twice"):
        router.rpc(GetText, _handler)
    assert "GET_TEXT" not in router.routes


def test_two_rpcs_answering_one_type_with_different_payloads_are_refused() -> None:
    router: Router[Any] = Router()
    router.rpc(GetText, _handler)
    with pytest.raises(UsageError, match="'TEXT'"):
        router.rpc(rpc("GET_OTHER", Text, "TEXT", Other), _handler)


def test_include_merges_emits_and_refuses_a_clash_across_routers() -> None:
    main: Router[Any] = Router()
    main.emits(Tick, topics=["a"])
    child: Router[Any] = Router()
    child.emits(Said)
    child.emits(Tick, topics=["b"])
    main.include(child)
    assert set(main.outbound) == {"TICK", "SAID"} and main.emitted_topics["TICK"] == ("a", "b")
    bad: Router[Any] = Router()
    bad.emits(message("SAID", Other))
    with pytest.raises(UsageError, match="included router"):
        main.include(bad)


def test_emits_refuses_what_is_not_a_message() -> None:
    router: Router[Any] = Router()
    with pytest.raises(UsageError, match="is an RPC"):
        router.emits(GetText)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="message"):
        router.emits("SAID")  # type: ignore[arg-type]
    assert router.outbound == {}


def test_copy_keeps_emits_apart() -> None:
    router: Router[Any] = Router()
    router.emits(Said)
    other = router.copy()
    other.emits(Tick)
    assert set(router.outbound) == {"SAID"} and set(other.outbound) == {"SAID", "TICK"}
