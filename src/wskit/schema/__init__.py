"""Message declarations and the validation backends behind one interface."""

from __future__ import annotations

from wskit.schema.declarations import MessageSchema, RpcSchema, message, rpc
from wskit.schema.registry import select_validator
from wskit.schema.validator import DecodeFailure, Decoder, OutboundValidationError, Validator

__all__ = [
    "DecodeFailure",
    "Decoder",
    "MessageSchema",
    "OutboundValidationError",
    "RpcSchema",
    "Validator",
    "message",
    "rpc",
    "select_validator",
]
