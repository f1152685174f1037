"""The JSON Schema of a payload accepts what the decoder accepts and rejects what it rejects,
for both backends, on the shared cases (tests/export/cases.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tests.export.cases import CASES, Case
from tests.export.support import validator

from wskit import message
from wskit.schema.jsonschema import JsonSchemas, json_schemas
from wskit.schema.registry import select_validator
from wskit.schema.validator import DecodeFailure

BACKENDS = ["pydantic", "msgspec"]


def _exported(case: Case, backend: str) -> tuple[JsonSchemas, Any]:
    schema = message("CASE", case.models[backend])
    decoder = select_validator(backend, [case.models[backend]]).decoder([schema], internal=())
    return json_schemas([schema], backend=backend), decoder


def _decodes(decoder: Any, payload: Any) -> bool:
    try:
        decoder.decode(json.dumps({"type": "CASE", "payload": payload}).encode())
    except DecodeFailure:
        return False
    return True


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_schema_accepts_what_the_decoder_accepts(case: Case, backend: str) -> None:
    """Every accepted sample passes both the decoder and the exported schema."""
    schemas, decoder = _exported(case, backend)
    check = validator(schemas.payloads["CASE"] or {}, schemas.components)
    for sample in case.accepted:
        assert _decodes(decoder, sample), sample
        assert not list(check.iter_errors(sample)), sample


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_schema_rejects_what_the_decoder_rejects(case: Case, backend: str) -> None:
    """Every rejected sample fails both the decoder and the exported schema."""
    schemas, decoder = _exported(case, backend)
    check = validator(schemas.payloads["CASE"] or {}, schemas.components)
    for sample in case.rejected:
        assert not _decodes(decoder, sample), sample
        assert list(check.iter_errors(sample)), sample


def _objects(node: Any) -> list[dict[str, Any]]:
    """Every schema object below ``node`` that declares properties."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if isinstance(node.get("properties"), dict):
            found.append(node)
        for value in node.values():
            found += _objects(value)
    elif isinstance(node, list):
        for item in node:
            found += _objects(item)
    return found


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_object_with_properties_is_closed(backend: str) -> None:
    """additionalProperties is false on every object with fixed keys, at every depth."""
    schemas = json_schemas([message(c.name, c.models[backend]) for c in CASES], backend=backend)
    objects = _objects(schemas.components)
    assert len(objects) >= len(CASES)
    assert all(obj["additionalProperties"] is False for obj in objects)


@pytest.mark.parametrize("backend", BACKENDS)
def test_refs_point_into_the_shared_components(backend: str) -> None:
    """Every $ref names a component of the one shared map; there is no $defs left."""
    schemas = json_schemas([message(c.name, c.models[backend]) for c in CASES], backend=backend)
    text = json.dumps([schemas.payloads, schemas.components])
    refs = {part.split('"')[0] for part in text.split('"$ref": "')[1:]}
    assert refs and all(ref.startswith("#/components/schemas/") for ref in refs)
    assert {ref.removeprefix("#/components/schemas/") for ref in refs} <= set(schemas.components)
    assert "$defs" not in text and "prefixItems" not in text
