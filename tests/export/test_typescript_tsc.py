"""The generated TypeScript compiles with ``tsc --strict``, and says what the server accepts:
code written against the chat demo's declarations compiles, wrong payloads do not (each
``@ts-expect-error`` line of tests/export/ts/*_usage.ts must fail), and for every router the
payload types WS-Kit infers from the zod module are the declarations' own, both ways.

One run of tsc compiles every file of this module (starting it costs more than a file).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from examples.chat.app import ChatLimits, create_router
from tests.export.apps import full_router
from tests.export.cases import CASES
from tests.export.typescript_tools import ROOT, project, tsc
from tests.support.docblocks import read_blocks

from wskit import Router, message
from wskit.export.typescript import typescript_declarations
from wskit.export.zod import zod_schemas


def cases_router(backend: str) -> Router[Any]:
    """Every shape of the shared JSON Schema cases, one message each, on ``backend``."""
    router: Router[Any] = Router(validator=backend)
    router.emits(*[message(f"T_{case.name}", case.models[backend]) for case in CASES])
    return router


ROUTERS: dict[str, Callable[[], Router[Any]]] = {
    "chat": lambda: create_router(ChatLimits(recoverable=True)),
    "full": full_router,
    "cases_pydantic": lambda: cases_router("pydantic"),
    "cases_msgspec": lambda: cases_router("msgspec"),
    "empty": Router,
}
USAGE = ("chat_usage.ts", "chat_zod_usage.ts", "chat_client.ts")


def _agreement(name: str, router: Router[Any]) -> str:
    """A file that compiles only if, for each message with a payload, the type WS-Kit infers
    from the zod module and the declared type are assignable to each other."""
    lines = [
        'import type { InferPayload } from "@ws-kit/zod";',
        f'import type {{ Payloads }} from "./{name}";',
        f'import {{ MESSAGES }} from "./{name}_zod";',
        "type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;",
        "type Inferred<T extends keyof typeof MESSAGES> = InferPayload<(typeof MESSAGES)[T]>;",
    ]
    for type_name, (schema, _) in sorted(router.declared().items()):
        if schema.payload_model is not None:
            key = json.dumps(type_name)
            lines.append(f"export const check_{len(lines)}: Same<Inferred<{key}>, Payloads[{key}]> = true;")
    return "\n".join(lines) + "\nexport {};\n"


#: a payload of the wrong type, not marked: tsc must report it (the harness can fail)
WRONG = 'import type { SayPayload } from "./chat";\nexport const wrong: SayPayload = { room: "r", text: 1 };\n'


DOC = ROOT / "docs" / "contract.md"


def _documented() -> dict[str, str]:
    """docs/contract.md's TypeScript example as ``doc_usage.ts``, beside the modules of the
    page's router (its first Python block) as the example names them."""
    found = read_blocks(DOC)
    namespace: dict[str, Any] = {"__name__": "contract_doc"}
    first = next(b for b in found if b.lang == "python" and not b.fragment)
    exec(compile(first.text, first.where, "exec", dont_inherit=True), namespace)
    (example,) = [b for b in found if b.lang == "ts" and "test_typescript_tsc.py" in b.detail]
    router = namespace["router"]
    return {
        "contract.ts": typescript_declarations(router),
        "contract.zod.ts": zod_schemas(router),
        "doc_usage.ts": example.text,
    }


@pytest.fixture(scope="module")
def errors(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    files: dict[str, str] = {"wrong.ts": WRONG, **_documented()}
    for name, make in ROUTERS.items():
        router = make()
        files[f"{name}.ts"] = typescript_declarations(router)
        files[f"{name}_zod.ts"] = zod_schemas(router)
        files[f"agree_{name}.ts"] = _agreement(name, router)
    folder = project(tmp_path_factory.mktemp("tsc"), files, fixtures=USAGE)
    return tsc(folder, sorted([*files, *USAGE]))


@pytest.mark.parametrize("name", list(ROUTERS))
def test_the_declarations_compile(name: str, errors: dict[str, list[str]]) -> None:
    """``wskit types`` output compiles under --strict."""
    assert errors[f"{name}.ts"] == []


@pytest.mark.parametrize("name", list(ROUTERS))
def test_the_zod_module_compiles_against_ws_kit(name: str, errors: dict[str, list[str]]) -> None:
    """``wskit types --zod`` output compiles against @ws-kit/zod 0.10's and zod 4's own types."""
    assert errors[f"{name}_zod.ts"] == []


@pytest.mark.parametrize("name", [n for n in ROUTERS if n != "empty"])
def test_ws_kit_infers_the_declared_payloads(name: str, errors: dict[str, list[str]]) -> None:
    """For every message, WS-Kit's InferPayload of the zod message is the declared payload type
    (recursive models, unions, tuples, records, optional and nullable fields included)."""
    assert errors[f"agree_{name}.ts"] == []


@pytest.mark.parametrize("usage", USAGE)
def test_code_using_the_chat_contract_compiles_and_wrong_payloads_do_not(
    usage: str, errors: dict[str, list[str]]
) -> None:
    """The front-end code compiles, and every line marked @ts-expect-error is an error."""
    assert errors[usage] == []


def test_the_documented_example_compiles(errors: dict[str, list[str]]) -> None:
    """docs/contract.md's TypeScript, as written, against the page's router; its marked line fails."""
    assert errors["contract.ts"] == errors["contract.zod.ts"] == []
    assert errors["doc_usage.ts"] == []


def test_the_harness_reports_a_wrong_payload(errors: dict[str, list[str]]) -> None:
    """An unmarked wrong payload is an error tsc reports (so the checks above can fail)."""
    assert [e.split(" ", 2)[1] for e in errors["wrong.ts"]] == ["TS2322"]


def test_tsc_reported_nothing_else(errors: dict[str, list[str]]) -> None:
    """No diagnostic outside the files compiled (options, resolution)."""
    assert errors.get("(tsc)", []) == []


def test_the_usage_fixtures_expect_errors() -> None:
    """The fixtures do mark wrong code (each expectation is checked by tsc above)."""
    fixtures = Path(__file__).with_name("ts")
    marked = sum((fixtures / name).read_text().count("@ts-expect-error") for name in USAGE[:2])
    assert marked >= 10
