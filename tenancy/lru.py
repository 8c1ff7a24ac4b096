"""Bounded least-recently-used maps: the caches of app tokens, token answers and refusals, and
registered tenants all keep at most a fixed number of entries, dropping the oldest-used first."""

from __future__ import annotations

from collections import OrderedDict
from typing import TypeVar

__all__ = ["put"]

K = TypeVar("K")
V = TypeVar("V")


def put(entries: OrderedDict[K, V], key: K, value: V, limit: int) -> None:
    """Store *value* under *key* as the most recently used entry of *entries*, then drop the
    least recently used ones beyond *limit*. The caller holds the map's lock."""
    entries[key] = value
    entries.move_to_end(key)
    while len(entries) > limit:
        entries.popitem(last=False)
