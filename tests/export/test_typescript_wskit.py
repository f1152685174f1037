"""The zod module (``wskit types --zod``) run by WS-Kit's own schema objects under Bun.

- Against a wskit server serving the chat demo (tests/export/ts/chat_client.ts): a client built
  from the generated messages joins, speaks, makes an RPC and gets its reply checked by the
  response schema; every frame the server sends passes the schema of its type; payloads the
  schemas refuse never leave the client, and the same frames sent raw are refused by the server
  (``INVALID_ARGUMENT`` at the same paths).
- On the shared JSON Schema cases (both backends) and the chat demo's own fields: the zod
  schemas accept what the server accepts and refuse what it refuses.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import pydantic
import pytest
from examples.chat.app import ChatLimits, JoinPayload, SayPayload, create_router
from tests.export.cases import CASES
from tests.export.test_typescript import PATTERNS
from tests.export.test_typescript_tsc import cases_router
from tests.export.typescript_tools import bun, node, project, run_bun

from wskit.export.zod import zod_schemas
from wskit.server import Server


async def test_a_ws_kit_client_built_from_the_zod_module_talks_to_the_chat_demo(tmp_path: Path) -> None:
    """Event, publication, RPC and refusals, both sides agreeing on what is valid."""
    router = create_router(ChatLimits(recoverable=True))
    folder = project(tmp_path, {"chat_zod.ts": zod_schemas(router)}, fixtures=("chat_client.ts",))
    runner = bun()
    async with Server(router, host="127.0.0.1", port=0) as server:
        process = await asyncio.create_subprocess_exec(
            runner,
            "chat_client.ts",
            server.url,
            cwd=folder,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, err.decode() + out.decode()
    report = json.loads(out.decode().strip().splitlines()[-1])
    assert report["welcome"]["max_members"] == ChatLimits().max_members
    assert report["joinRefused"] == [] and report["sayRefused"] == []
    assert report["joined"] == {"room": "lobby", "name": "ada", "members": 1}
    assert report["position"]["room"] == "lobby"
    assert report["said"]["payload"]["text"] == "hello from WS-Kit"
    assert set(report["said"]["meta"]) == {"topic", "offset", "epoch"}  # admitted by the strict meta
    assert report["history"] == {"room": "lobby", "texts": ["hello from WS-Kit"]}
    refused = report["refused"]
    assert [i["path"] for i in refused["emptyText"]] == ["payload.text"]
    assert [i["path"] for i in refused["badRoom"]] == ["payload.room"]
    assert [i["path"] for i in refused["extraKey"]] == ["payload"]
    assert report["server"] == {
        "emptyText": {"type": "ERROR", "code": "INVALID_ARGUMENT", "paths": ["payload.text"]},
        "badRoom": {"type": "RPC_ERROR", "code": "INVALID_ARGUMENT", "paths": ["payload.room"]},
    }
    assert report["failedSchema"] == {} and report["unknownTypes"] == []


def _verdicts(folder: Path, module: str, samples: list[dict[str, Any]]) -> list[bool]:
    (folder / "samples.json").write_text(json.dumps(samples))
    verdicts: list[bool] = run_bun(folder, "zod_samples.ts", f"./{module}", "samples.json")
    return verdicts


@pytest.mark.parametrize("backend", ["pydantic", "msgspec"])
def test_the_zod_schemas_accept_and_refuse_what_the_server_does(backend: str, tmp_path: Path) -> None:
    """Every shared case's accepted payloads pass and its rejected ones fail (strict nested
    objects, lengths, ranges, patterns, enums, literals, formats, tuples, tagged unions,
    recursive models)."""
    module = f"cases_{backend}_zod.ts"
    folder = project(tmp_path, {module: zod_schemas(cases_router(backend))}, fixtures=("zod_samples.ts",))
    samples, expected = [], []
    for case in CASES:
        for payload, ok in [(p, True) for p in case.accepted] + [(p, False) for p in case.rejected]:
            samples.append({"type": f"T_{case.name}", "payload": payload})
            expected.append((case.name, payload, ok))
    verdicts = _verdicts(folder, module, samples)
    wrong = [(name, payload, ok) for (name, payload, ok), got in zip(expected, verdicts, strict=True) if got != ok]
    assert wrong == []


CHAT_SAMPLES: list[tuple[str, type[pydantic.BaseModel], dict[str, Any]]] = [
    ("JOIN", JoinPayload, {"room": "lobby", "name": "ada"}),
    ("JOIN", JoinPayload, {"room": "lobby", "name": "José María"}),  # \w is Unicode on the server
    ("JOIN", JoinPayload, {"room": "lobby", "name": "名前 ok"}),
    ("JOIN", JoinPayload, {"room": "lobby", "name": "a  b"}),
    ("JOIN", JoinPayload, {"room": "lobby", "name": "x" * 25}),
    ("JOIN", JoinPayload, {"room": "lobby", "name": "a!"}),
    ("JOIN", JoinPayload, {"room": "lobby", "name": "ada", "offset": 3, "epoch": "e1"}),
    ("JOIN", JoinPayload, {"room": "lobby", "name": "ada", "offset": -1, "epoch": "e1"}),
    ("JOIN", JoinPayload, {"room": "Lobby", "name": "ada"}),
    ("JOIN", JoinPayload, {"room": "lobby", "name": "ada", "leave": None}),
    ("SAY", SayPayload, {"room": "r-1_x", "text": "x" * 500}),
    ("SAY", SayPayload, {"room": "r", "text": "x" * 501}),
    ("SAY", SayPayload, {"room": "-r", "text": "t"}),
]


def test_the_chat_schemas_agree_with_its_models(tmp_path: Path) -> None:
    """The chat demo's fields, checked by Python functions with Unicode patterns on the server,
    are accepted and refused alike by the generated zod schemas."""
    folder = project(tmp_path, {"chat_zod.ts": zod_schemas(create_router())}, fixtures=("zod_samples.ts",))
    verdicts = _verdicts(folder, "chat_zod.ts", [{"type": t, "payload": p} for t, _, p in CHAT_SAMPLES])
    expected = []
    for _, model, payload in CHAT_SAMPLES:
        try:
            model.model_validate(payload)
            expected.append(True)
        except pydantic.ValidationError:
            expected.append(False)
    assert verdicts == expected
    assert True in expected and False in expected


def test_translated_patterns_compile_in_javascript() -> None:
    """Each translation the unit tests expect is a valid JavaScript RegExp with its flags (one
    that is not would stop the whole generated module from loading)."""
    patterns = [list(ecma) for _, ecma in PATTERNS]
    script = (
        "const bad = [];"
        "for (const [s, f] of JSON.parse(process.argv[1])) { try { new RegExp(s, f); } catch (e) { bad.push(s); } }"
        "console.log(JSON.stringify(bad));"
    )
    done = subprocess.run([node(), "-e", script, json.dumps(patterns)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
    assert len(patterns) >= 10
