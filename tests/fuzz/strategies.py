"""Hypothesis strategies and checks shared by the fuzz tests.

The input classes that once escaped as a non-tenancy exception (or were accepted) each have a
strategy that generates them, and the Wix/webhook strategies draw from all of them: numbers of
every kind (floats with fractions, NaN, infinities, huge and negative integers, and the same as
strings), strings with lone surrogates, JSON nested past the recursion limit (as raw bytes:
``json.dumps`` itself cannot write it), dates out of datetime's range once moved to UTC, and
the app secret or a token echoed back in a response header.
"""

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

# Strings that hold a lone surrogate (U+D800..U+DFFF): not text, cannot be encoded as UTF-8.
surrogate_text = st.builds(
    lambda before, surrogate, after: f"{before}{surrogate}{after}",
    st.text(max_size=8),
    st.characters(categories=["Cs"]),
    st.text(max_size=8),
)
# Text with everything hostile in it: any code point (lone surrogates and controls
# included), the planted secret, and the shapes a Wix value has.
hostile_text = st.one_of(
    st.text(st.characters(codec=None), max_size=40),
    surrogate_text,
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
    st.integers(min_value=10**300, max_value=10**320),  # beyond a float
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=0, max_value=4e9).filter(lambda f: not f.is_integer()),  # fractions
)
# A NumericDate (Token Info exp/iat, JWT iat/exp/nbf) in every shape: now-ish with fractions,
# an hour old, negative, year 1, huge, NaN/infinity, bools, and the same written as strings.
NOW = 1_796_536_306  # a fixed instant (strategies must not change between runs of an example)
numeric_dates = st.one_of(
    st.integers(NOW - 7200, NOW + 7200),
    st.floats(NOW - 7200, NOW + 7200),
    st.just(NOW - 3600 + 0.5),
    st.sampled_from([-1, 0, -62135596800, 253402300800, 10**20, float("nan"), float("inf"), -float("inf")]),
    numbers,
    numbers.map(str),
    st.sampled_from(["1796536306.5", " 1796536306 ", "-62135596800", "NaN", "Infinity", "1e400", "", "soon"]),
    st.booleans(),
)
# ISO-8601 dates of every range: year 1 with a positive offset and year 9999 with a negative one
# leave datetime's range once moved to UTC; five-digit years and garbage do not parse at all.
iso_dates = st.one_of(
    st.builds(
        lambda when, offset: when.isoformat() + offset,
        st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31, 23, 59, 59)),
        st.sampled_from(["Z", "+14:00", "-12:00", "+00:00", "", "+05:30"]),
    ),
    st.sampled_from(
        ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "99999-01-01T00:00:00Z", "0000-01-01", "Z"]
    ),
)


def deep_json(depth: int, kind: str = "[") -> bytes:
    """JSON nested *depth* levels (arrays, or objects with kind ``{``), as raw bytes."""
    if kind == "[":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


# Depths around tenancy's bound (64), the interpreter's recursion limit (1000) and far beyond.
deep_depths = st.one_of(st.integers(60, 70), st.integers(900, 1100), st.integers(1100, 40_000))
deep_bodies = st.builds(deep_json, deep_depths, st.sampled_from(["[", "{"]))
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
    surrogate_text,
    echoes,
    st.sampled_from(["", " ", "true", "false", "TRUE", "1715096067", "-1", "1e400", "null", "NaN"]),
    st.uuids().map(str),
)
wix_json = st.recursive(
    st.one_of(numbers, wix_text),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(wix_text, children, max_size=4),
    max_leaves=12,
)
# Response headers a hostile server (or a proxy) may send back: the request id echoing the app
# secret or a token. Header values are printable ASCII on the wire.
_header_text = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=12)
echo_headers = st.fixed_dictionaries(
    {},
    optional={
        "x-wix-request-id": st.one_of(
            st.builds(
                lambda before, secret, after: f"{before}{secret}{after}",
                _header_text,
                st.sampled_from([APP_SECRET, f"OauthNG.JWS.{MARK}", f"eyJ{MARK}.eyJ{MARK}.{MARK}"]),
                _header_text,
            ),
            _header_text,
        )
    },
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
