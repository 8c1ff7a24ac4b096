"""Remember refused tokens, so a client repeating a bad token costs Wix one Token Info call.

A token Wix refused stays refused (inactive, another app's, no instance): asking again only
spends the app's rate limit, and lets anyone make the app call Wix at will. The cache is keyed
by the token's SHA-256 (never the token), bounded, and forgets after ``ttl`` seconds.
"""

from __future__ import annotations

import collections
import hashlib
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from tenancy.errors import InvalidToken

__all__ = ["RefusalCache"]


class _Resolver(Protocol):
    def resolve(self, token: str) -> Any: ...


class RefusalCache:
    """Wraps a resolver (``TokenResolver``): a token refused once is refused again without a call.

    Only :class:`~tenancy.InvalidToken` is remembered; Wix being unavailable is not a refusal.
    """

    def __init__(
        self,
        resolver: _Resolver,
        *,
        ttl: float = 300.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.resolver = resolver
        self._ttl = ttl
        self._max = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._refused: collections.OrderedDict[bytes, float] = collections.OrderedDict()

    def __repr__(self) -> str:
        return f"RefusalCache({self.resolver!r}, ttl={self._ttl})"

    def resolve(self, token: str) -> Any:
        """The resolver's answer, or :class:`~tenancy.InvalidToken` for a token refused recently."""
        key = (
            hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest() if isinstance(token, str) else b""
        )
        now = self._clock()
        with self._lock:
            until = self._refused.get(key)
            if until is not None:
                if until > now:
                    raise InvalidToken(reason="refused before")
                del self._refused[key]
        try:
            return self.resolver.resolve(token)
        except InvalidToken:
            with self._lock:
                self._refused[key] = now + self._ttl
                self._refused.move_to_end(key)
                while len(self._refused) > self._max:
                    self._refused.popitem(last=False)
            raise
