"""Validation of Wix app instance ids, the tenant key."""

from __future__ import annotations

import uuid

from tenancy.errors import InvalidInstanceId

__all__ = ["parse_instance_id"]

# Longest accepted text form: "urn:uuid:" + 36 characters plus braces; anything longer is
# refused before parsing so an attacker-sized string never reaches uuid.UUID().
_MAX_TEXT = 64


def parse_instance_id(value: object) -> uuid.UUID:
    """Return *value* as a :class:`uuid.UUID`, or raise :class:`~tenancy.InvalidInstanceId`.

    Accepts a ``uuid.UUID`` or any string ``uuid.UUID()`` parses (any case, with or without
    hyphens or braces). ``None``, ``0``, ``""``, overlong or malformed values raise. The value
    is not echoed in the message: a caller may have passed a token by mistake.
    """
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str):
        raise InvalidInstanceId(f"instance id must be a UUID, got {type(value).__name__}")
    if not value.strip():
        raise InvalidInstanceId("instance id is empty")
    if len(value) > _MAX_TEXT:
        raise InvalidInstanceId(f"instance id is not a UUID ({len(value)} characters)")
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidInstanceId(f"instance id is not a UUID (a string of {len(value)} characters)") from None
