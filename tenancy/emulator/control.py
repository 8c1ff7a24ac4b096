"""The emulator's control API, described: each endpoint's path, body and effect, and body checks.

The table itself is :data:`tenancy.emulator.core.CONTROL_ENDPOINTS`; this module holds what
describes one endpoint and checks a request body against it, so that a wrong body is a 400
naming what the endpoint expects (never silently read as "no value").
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BadBody", "ControlEndpoint", "Field", "parse_body"]


class BadBody(ValueError):
    """A control request whose body does not match what its endpoint expects."""


@dataclass(frozen=True)
class Field:
    """One body field: its JSON types (``"string"``, ``"number"``, ``"integer"``, ``"boolean"``,
    ``"array"``, ``"object"``, ``"null"``; empty for any) and whether it is required."""

    types: tuple[str, ...] = ()
    required: bool = False
    choices: tuple[Any, ...] = ()


@dataclass(frozen=True)
class ControlEndpoint:
    """One ``/_emulator/...`` endpoint: ``body`` is its request body as shown in the docs."""

    method: str
    path: str  # "{id}" stands for an instance id
    body: str  # "" for none
    effect: str
    fields: Mapping[str, Field] = field(default_factory=dict)
    any_fields: tuple[str, ...] = ()  # accepted names when ``fields`` is open (site fields)
    need_one: bool = False  # at least one field

    def matches(self, method: str, parts: list[str]) -> list[str] | None:
        """``None`` if not this endpoint; else its ``{id}`` segments (none, or one)."""
        pattern = self.path.strip("/").split("/")[1:]
        if method != self.method or len(pattern) != len(parts):
            return None
        captured: list[str] = []
        for want, got in zip(pattern, parts, strict=True):
            if want == "{id}":
                captured.append(got)
            elif want != got:
                return None
        return captured

    def describe(self, indent: str = "  ") -> str:
        """``POST /_emulator/outage: effect`` and, below it, the body: for help texts."""
        text = f"{indent}{self.method} {self.path}: {self.effect}"
        return f"{text}\n{indent}    body: {self.body}" if self.body else text


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "null": (type(None),),
}


def _is(value: Any, kind: str) -> bool:
    if kind in ("number", "integer") and isinstance(value, bool):
        return False
    return isinstance(value, _JSON_TYPES[kind])


def parse_body(endpoint: ControlEndpoint, raw: bytes) -> dict[str, Any]:
    """The body as a dict, checked against *endpoint*; :class:`BadBody` names what is expected."""
    expects = f"{endpoint.method} {endpoint.path} expects " + (endpoint.body or "no body")
    if not raw.strip():
        value: Any = {}
    else:
        try:
            value = json.loads(raw)
        except ValueError:
            raise BadBody(f"{expects}; the body is not JSON") from None
    if not isinstance(value, dict):
        raise BadBody(f"{expects}; the body is not a JSON object")
    if not endpoint.body:
        if value:
            raise BadBody(f"{expects}; got field(s) {', '.join(sorted(value))}")
        return value
    allowed = set(endpoint.fields) | set(endpoint.any_fields)
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise BadBody(f"{expects}; unknown field(s) {', '.join(unknown)}")
    for name, spec in endpoint.fields.items():
        if name not in value:
            if spec.required:
                raise BadBody(f"{expects}; missing field {name}")
            continue
        item = value[name]
        if spec.types and not any(_is(item, kind) for kind in spec.types):
            raise BadBody(f"{expects}; {name} must be {' or '.join(spec.types)}")
        if spec.choices and item not in spec.choices:
            shown = ", ".join(json.dumps(choice) for choice in spec.choices)
            raise BadBody(f"{expects}; {name} must be one of {shown}")
    if endpoint.need_one and not value:
        raise BadBody(f"{expects}; the body names no field")
    return value
