"""Single-flight: concurrent callers asking for the same key share one call."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Generic, TypeVar

__all__ = ["SingleFlight"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    """Run ``fn`` once per key at a time; callers arriving meanwhile wait for its outcome.

    The first caller (the leader) runs ``fn`` in its own thread; the others block until it
    finishes and get the same value, or the same exception raised. The key is forgotten
    as soon as the call ends, so a later caller runs ``fn`` again (callers cache results
    themselves, before the call ends, so that later callers find them).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[K, Future[V]] = {}

    def do(self, key: K, fn: Callable[[], V]) -> V:
        """Return ``fn()``, or the result of the identical call already in flight."""
        with self._lock:
            call = self._calls.get(key)
            leader = call is None
            if call is None:
                call = self._calls[key] = Future()
        if not leader:
            return call.result()
        try:
            value = fn()
        except BaseException as exc:
            call.set_exception(exc)
            raise
        finally:
            with self._lock:
                del self._calls[key]
        call.set_result(value)
        return value

    def in_flight(self) -> int:
        """How many keys have a call running (for tests and metrics)."""
        with self._lock:
            return len(self._calls)
