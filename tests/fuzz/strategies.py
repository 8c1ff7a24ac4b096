"""Hypothesis strategies and checks shared by the fuzz tests."""

from __future__ import annotations

import dataclasses
import datetime as dt
import types
import typing
import uuid
from collections.abc import Mapping
from typing import Any

from hypothesis import strategies as st

from tests.fuzz.conftest import APP_SECRET, MARK

# Text with everything hostile in it: any code point (lone surrogates and controls
# included), the planted secret, and the shapes a Wix value has.
hostile_text = st.one_of(
    st.text(st.characters(codec=None), max_size=40),
    st.text(st.characters(categories=["Cs", "Cc", "Zs"]), max_size=10),
    st.builds(lambda a, b: f"{a}{MARK}{b}", st.text(max_size=8), st.text(max_size=8)),
    st.sampled_from(["", " ", "true", "false", "TRUE", "1715096067", "-1", "1e400", "null", "NaN"]),
    st.uuids().map(str),
)
numbers = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
)
scalars = st.one_of(numbers, hostile_text)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(hostile_text, children, max_size=4),
    max_leaves=12,
)

# What Wix might send back: any text, and echoes of what it was sent (the app secret, app
# tokens, JWTs), which the client must mask. (A bare marker is not one of our secrets: text
# Wix makes up may be quoted in a message.)
echoes = st.builds(
    lambda before, secret, after: f"{before}{secret}{after}",
    st.text(max_size=6),
    st.sampled_from([APP_SECRET, f"OauthNG.JWS.{MARK}", f"eyJ{MARK}.eyJ{MARK}.{MARK}"]),
    st.text(max_size=6),
)
wix_text = st.one_of(
    st.text(st.characters(codec=None), max_size=40),
    echoes,
    st.sampled_from(["", " ", "true", "false", "TRUE", "1715096067", "-1", "1e400", "null", "NaN"]),
    st.uuids().map(str),
)
wix_json = st.recursive(
    st.one_of(numbers, wix_text),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(wix_text, children, max_size=4),
    max_leaves=12,
)


def conforms(value: object, hint: Any) -> bool:
    """Whether ``value`` has the declared type ``hint`` (dataclasses checked field by field)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if origin in (typing.Union, types.UnionType):
        return any(conforms(value, arg) for arg in args)
    if origin is tuple:
        return isinstance(value, tuple) and all(conforms(item, args[0]) for item in value)
    if origin is list:
        return isinstance(value, list) and all(conforms(item, args[0]) for item in value)
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        return isinstance(value, Mapping) and all(isinstance(key, str) for key in value)
    if dataclasses.is_dataclass(hint):
        return isinstance(value, hint) and all_fields_conform(value)
    if hint is bool:
        return type(value) is bool
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, float)
    if hint is dt.datetime:
        return isinstance(value, dt.datetime) and value.tzinfo is not None
    if isinstance(hint, type):
        return isinstance(value, hint)
    raise AssertionError(f"no check for {hint!r}")


def all_fields_conform(obj: Any) -> bool:
    """Every field of a dataclass instance has its declared type."""
    hints = typing.get_type_hints(type(obj))
    return all(conforms(getattr(obj, f.name), hints[f.name]) for f in dataclasses.fields(obj))


def no_secret(*texts: str) -> bool:
    """The planted marker appears in none of the texts."""
    return all(MARK not in text for text in texts)


def canonical(value: object) -> uuid.UUID | None:
    """What parse_instance_id must answer (its contract: a UUID, or a string of at most 64
    characters that uuid.UUID() parses); ``None``: it must raise InvalidInstanceId."""
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str) or not value.strip() or len(value) > 64:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
