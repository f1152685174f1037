"""The router's contract, written for other tools: the AsyncAPI 3 document
(:mod:`wskit.export.asyncapi`), TypeScript declarations (:mod:`wskit.export.typescript`) and
zod schemas in the shape WS-Kit's ``message()``/``rpc()`` take (:mod:`wskit.export.zod`).

Built on the JSON Schemas of :mod:`wskit.schema.jsonschema`; reads the router's declarations
only, so exporting never starts a server (``wskit asyncapi`` and ``wskit types`` are thin
wrappers).
"""

from __future__ import annotations

__all__: list[str] = []
