"""JSON from the network, parsed so that only ``ValueError`` can come out.

``json.loads`` alone lets three hostile shapes through as something else: nesting deeper than
the interpreter's recursion limit (``RecursionError``), nesting shallow enough to load but deep
enough to blow up whoever walks or re-serialises it later, and ``"\\ud800"`` escapes that
decode to lone surrogates (``UnicodeEncodeError`` the moment the string is sent to PostgreSQL
or a log file). :func:`loads` refuses all three with :class:`UnsafeJSON`, a ``ValueError``
whose message names the problem and quotes nothing of the input.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["MAX_DEPTH", "UnsafeJSON", "check", "loads"]

# Wix answers and webhook envelopes nest about five levels; 64 leaves room for anything Wix
# might add while keeping every later walk (json.dumps, psycopg's Jsonb) far from the limit.
MAX_DEPTH = 64
# A \uD800-\uDFFF escape: the only way a surrogate gets into a string parsed from bytes
# (raw surrogate bytes are invalid UTF-8 and fail decoding as a ValueError already).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


class UnsafeJSON(ValueError):
    """JSON that parses but must not be used (too deep, or holding a lone surrogate)."""


def loads(content: bytes | str) -> Any:
    """``json.loads`` that raises only ``ValueError`` (:class:`UnsafeJSON` for the shapes above)."""
    try:
        value = json.loads(content)
    except RecursionError:
        raise UnsafeJSON(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    if isinstance(content, str):
        # Already text: a surrogate may be in it raw, not only as an escape.
        check_strings = not content.isascii() or _SURROGATE_ESCAPE.search(content.encode()) is not None
        brackets = content.count("{") + content.count("[")
    else:
        check_strings = _SURROGATE_ESCAPE.search(content) is not None
        brackets = content.count(b"{") + content.count(b"[")
    # Nesting never goes deeper than the number of opening brackets (inside strings too): with
    # no more than MAX_DEPTH of them and no string to check, the walk would find nothing.
    if check_strings or brackets > MAX_DEPTH:
        _check(value, check_strings=check_strings)
    return value


def check(value: Any) -> None:
    """Raise :class:`UnsafeJSON` if *value* (parsed elsewhere) is too deep or holds a lone surrogate."""
    _check(value, check_strings=True)


def _check(value: Any, *, check_strings: bool) -> None:
    # Iterative: a recursive walk would hit the very limit this guards against.
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            if depth > MAX_DEPTH:
                raise UnsafeJSON(f"JSON nested deeper than {MAX_DEPTH} levels")
            for key, child in item.items():
                if check_strings:
                    _check_string(key)
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            if depth > MAX_DEPTH:
                raise UnsafeJSON(f"JSON nested deeper than {MAX_DEPTH} levels")
            stack.extend((child, depth + 1) for child in item)
        elif check_strings and isinstance(item, str):
            _check_string(item)


def _check_string(text: str) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsafeJSON("JSON string holds a lone surrogate (not valid Unicode text)") from None
