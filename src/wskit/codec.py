"""A router's declarations compiled for the wire: one schema backend, one encoder per type.

The :class:`~wskit.router.Router` only declares; what turns a payload into frame bytes is
built here once per served router (by the runtime) and kept for its life. Outbound frames
are validated (unless the router turned it off) and serialised by the backend, and the
envelope around them is concatenated from pre-encoded pieces, so a publish to thousands of
sockets is serialised once.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from wskit.errors import UsageError
from wskit.protocol import frame, type_prefix
from wskit.schema.declarations import MessageSchema
from wskit.schema.registry import select_validator
from wskit.schema.validator import PayloadEncoder, Validator

if TYPE_CHECKING:
    from wskit.router import Router

__all__ = ["Codec"]


class Codec:
    """Encoders of one router's outbound messages (built on first use of each type).

    ``encodes`` counts publications serialised per message type (a publish to many sockets
    counts once, which the benchmarks and a test check); replies and sends are not counted,
    to keep the per-message path as short as it was.
    """

    __slots__ = ("_encoders", "encodes", "validate", "validator")

    def __init__(self, router: Router[Any]) -> None:
        self.validator: Validator = router.validator
        self.validate = router.validate_outbound
        self._encoders: dict[MessageSchema[Any], tuple[bytes, PayloadEncoder | None]] = {}
        self.encodes: Counter[str] = Counter()

    def encoder_for(self, schema: MessageSchema[Any]) -> tuple[bytes, PayloadEncoder | None]:
        """The pre-encoded type prefix and payload encoder of an outbound message type."""
        cached = self._encoders.get(schema)  # declarations hash by identity
        if cached is None:
            if not isinstance(schema, MessageSchema):
                raise UsageError(f"expected a message(...) declaration, got {schema!r}")
            validator = self.validator
            model = schema.payload_model
            if model is not None and not validator.accepts(model):
                validator = select_validator(None, [model])
            cached = (type_prefix(schema.type), validator.encoder(schema, validate=self.validate))
            self._encoders[schema] = cached
        return cached

    def encode(self, schema: MessageSchema[Any], payload: Any, *, meta: bytes | None) -> bytes:
        """One outbound frame: validated (unless turned off) and serialised by the backend.

        Raises :class:`~wskit.errors.UsageError` for a payload given to a message declared
        without one (or none given to one that has one), and
        :class:`~wskit.schema.validator.OutboundValidationError` for a payload that fails its
        schema.
        """
        prefix, encoder = self.encoder_for(schema)
        if encoder is None:
            if payload is not None and payload != {}:
                raise UsageError(f"message {schema.type!r} is declared without payload, but one was given")
            return frame(prefix, meta, None)
        if payload is None:
            raise UsageError(f"message {schema.type!r} needs a payload")
        return frame(prefix, meta, encoder(payload))

    def encode_parts(self, schema: MessageSchema[Any], payload: Any) -> tuple[bytes, bytes]:
        """A publication's frame in two halves around where ``meta`` goes:
        ``(b'{"type":"X"', b',"payload":...}')`` (counted in :attr:`encodes`)."""
        prefix = self.encoder_for(schema)[0]
        self.encodes[schema.type] += 1
        return prefix, self.encode(schema, payload, meta=None)[len(prefix) :]
