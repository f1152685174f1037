"""Checking exported schemas with real validators: jsonschema (draft-07) for sample data and
frames, the official @asyncapi/parser (Node) for whole AsyncAPI documents."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.support.ci import require_module, unavailable

jsonschema = require_module("jsonschema", reason="the export tests check samples against the exported JSON Schema")

DRAFT_07 = "http://json-schema.org/draft-07/schema#"

#: formats checked as the decoders check them (jsonschema needs extra packages for date-time)
FORMATS = jsonschema.FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    """RFC 3339: a date, a time and an offset (a naive time is not one)."""
    return not isinstance(value, str) or datetime.fromisoformat(value).tzinfo is not None


def validator(schema: dict[str, Any], components: dict[str, dict[str, Any]]) -> Any:
    """A draft-07 validator of ``schema`` whose ``#/components/schemas/...`` refs resolve
    in ``components``; the document itself is checked against the draft-07 meta-schema."""
    root = {"$schema": DRAFT_07, "components": {"schemas": components}, "allOf": [schema]}
    jsonschema.Draft7Validator.check_schema(root)
    return jsonschema.Draft7Validator(root, format_checker=FORMATS)


ROOT = Path(__file__).resolve().parents[2]
#: where scripts/npm-deps.sh installs the parser (``make test`` runs it)
NPM_DEPS = ROOT / ".npm-deps"
VALIDATE = Path(__file__).with_name("validate_asyncapi.mjs")


def official_parser(documents: dict[str, dict[str, Any]], folder: Path) -> dict[str, list[dict[str, Any]]]:
    """The diagnostics of @asyncapi/parser (validate_asyncapi.mjs) for each named document,
    all parsed by one run of Node.

    Without Node or the parser the test is skipped, or failed under ``CI=true``.
    """
    node = shutil.which("node")
    if node is None:
        unavailable("node is not installed: the AsyncAPI document is validated by @asyncapi/parser")
    if not (NPM_DEPS / "node_modules" / "@asyncapi" / "parser").is_dir():
        unavailable("@asyncapi/parser is not installed: run scripts/npm-deps.sh (make test does)")
    paths = {name: folder / f"{name}.json" for name in documents}
    for name, path in paths.items():
        path.write_text(json.dumps(documents[name]))
    done = subprocess.run(
        [node, str(VALIDATE), str(NPM_DEPS), *map(str, paths.values())],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr
    report = json.loads(done.stdout)
    return {name: report[str(path)] for name, path in paths.items()}


def frame_validator(document: dict[str, Any], type_name: str) -> Any:
    """A draft-07 validator of frames of ``type_name``: the envelope of the document's message
    of that name, its refs resolved in the document's components."""
    found = [m for m in document["components"]["messages"].values() if m["name"] == type_name]
    assert len(found) == 1, f"{len(found)} messages named {type_name!r}"
    return validator(found[0]["payload"], document["components"]["schemas"])
