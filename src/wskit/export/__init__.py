"""The router's contract, written for other tools: the AsyncAPI 3 document
(:mod:`wskit.export.asyncapi`).

Built on the JSON Schemas of :mod:`wskit.schema.jsonschema`; reads the router's declarations
only, so exporting never starts a server (the ``wskit asyncapi`` command is a thin wrapper).
"""

from __future__ import annotations

__all__: list[str] = []
