"""Checking sample data against exported schemas with a real JSON Schema validator (draft-07)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tests.support.ci import require_module

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
