"""TokenResolver: from a request's access token to a verified tenant (``instance_id``), cached.

A token is accepted only if Wix's Token Info says it is active, its ``exp`` (when given: a JWT
NumericDate, fractions included; an ``exp`` that is not one refuses the token) has not
passed, it was issued for this app (``clientId``) and it names an instance (DESIGN.md
invariant 6). ``exp`` is allowed :data:`EXP_LEEWAY` (30) seconds of clock skew between this
host and Wix: a Token Info answer whose ``exp`` lies more than that in the past is refused
(``reason="expired"``), even with ``active: true``. Every refusal raises
:class:`~tenancy.InvalidToken` with the same message ("token rejected"; the ``reason``
attribute says why, for logs). When Wix cannot answer, :class:`~tenancy.WixUnavailable`,
:class:`~tenancy.WixRateLimited` (or, for a garbled answer, :class:`~tenancy.WixError`)
propagate instead, so a web app can answer 503 rather than 401; either way no tenant is
returned.

The cache is keyed by the SHA-256 digest of the token (the token itself is never stored),
holds at most ``max_entries`` entries (least recently used evicted first), and an entry
lives until the token's ``exp`` or ``max_ttl`` seconds, whichever comes first. *Definite*
refusals are remembered the same way (by digest, bounded) for ``refusal_ttl`` seconds (default
300; 0 forgets them at once): a token Wix refused stays refused, and asking again would let
anyone repeating a bad token spend the app's Token Info rate limit. Definite means Wix gave a
well-formed verdict on the token itself: a 200 answer with a boolean ``active: false``, a
readable ``exp`` in the past or a ``clientId`` string of another app, or a 401, 403 or 400
``invalid_token``. Nothing else is remembered, so the next request asks Wix again: Wix being
unavailable (timeouts, 408, 429, 5xx), a garbled answer (``200 {}``, not JSON, fields of the
wrong type, an unreadable ``exp``), any other 4xx, or an answer without an instance id.
Concurrent requests with one new token share a single Token Info call either way.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Protocol

from tenancy import lru
from tenancy.errors import ConfigurationError, InvalidToken
from tenancy.wix.singleflight import SingleFlight
from tenancy.wix.types import TokenInfo

__all__ = ["EXP_LEEWAY", "MAX_TOKEN_LENGTH", "TokenInfoSource", "TokenResolver"]

log = logging.getLogger("tenancy.resolver")

MAX_TOKEN_LENGTH = 4096  # Wix tokens are ~1 KB; anything much longer is not one
EXP_LEEWAY = 30.0  # seconds a Token Info ``exp`` may lie in the past (clock skew with Wix)


class TokenInfoSource(Protocol):
    """What the resolver needs from a client: the app id and Token Info (``WixClient`` fits)."""

    @property
    def app_id(self) -> str: ...

    def token_info(self, token: str) -> TokenInfo: ...


class TokenResolver:
    """Resolves access tokens to :class:`~tenancy.wix.types.TokenInfo` with a verified instance.

    Thread-safe; share one per process. ``clock`` returns Unix seconds (it is compared with
    the token's ``exp``); ``exp_leeway`` is the clock skew allowed on ``exp`` (default
    :data:`EXP_LEEWAY`, 30 s): a token whose ``exp`` is further in the past is refused.
    ``refusal_ttl`` is how long a refused token is refused again without asking Wix (300 s;
    0 asks every time).
    """

    def __init__(
        self,
        client: TokenInfoSource,
        *,
        max_entries: int = 10_000,
        max_ttl: float = 300.0,
        clock: Callable[[], float] = time.time,
        exp_leeway: float = EXP_LEEWAY,
        refusal_ttl: float = 300.0,
    ) -> None:
        if max_entries < 1 or max_ttl <= 0 or exp_leeway < 0 or refusal_ttl < 0:
            raise ConfigurationError(
                "max_entries must be >= 1, max_ttl > 0, exp_leeway >= 0 and refusal_ttl >= 0"
            )
        self._refusal_ttl = refusal_ttl
        self._exp_leeway = exp_leeway
        self._client = client
        self._app_id = client.app_id
        self._max_entries = max_entries
        self._max_ttl = max_ttl
        self._clock = clock
        self._lock = threading.Lock()
        # sha256(token) -> (info, valid until); LRU order.
        self._cache: collections.OrderedDict[bytes, tuple[TokenInfo, float]] = collections.OrderedDict()
        # sha256(token) -> (why it was refused, remembered until); LRU order.
        self._refused: collections.OrderedDict[bytes, tuple[str, float]] = collections.OrderedDict()
        self._flights: SingleFlight[bytes, TokenInfo] = SingleFlight()

    def __repr__(self) -> str:
        return (
            f"TokenResolver(app_id={self._app_id!r}, cached={self.cached}, max_entries={self._max_entries})"
        )

    # Not __len__: an empty resolver must stay truthy in `if resolver:`.
    @property
    def cached(self) -> int:
        """How many tokens are cached right now."""
        with self._lock:
            return len(self._cache)

    def resolve(self, token: str) -> TokenInfo:
        """The verified Token Info of ``token`` (raw, or ``"Bearer <token>"``).

        The result's ``instance_id`` is never ``None``. Raises :class:`~tenancy.InvalidToken`
        for any refusal, before any request when the token is malformed.
        """
        token = _strip_bearer(token)
        key = _key(token)
        now = self._clock()
        # Hit path: one hash, one dict lookup under the lock. A cached entry was validated
        # when it was stored, so shape checks only run on a miss.
        with self._lock:
            entry = self._cache.get(key)
            if entry is not None:
                if entry[1] > now:
                    self._cache.move_to_end(key)
                    return entry[0]
                del self._cache[key]
            refused = self._refused.get(key)
            if refused is not None:
                if refused[1] > now:
                    raise InvalidToken(reason=refused[0], definite=True)
                del self._refused[key]
        _check_shape(token)
        return self._flights.do(key, lambda: self._fetch(key, token))

    def resolve_instance_id(self, token: str) -> uuid.UUID:
        """Just the verified instance id of ``token`` (the tenant key); same rules as :meth:`resolve`."""
        instance_id = self.resolve(token).instance_id
        if instance_id is None:  # resolve() never returns one without; this satisfies the types
            raise InvalidToken(reason="no instance id")
        return instance_id

    def invalidate(self, token: str) -> None:
        """Forget the cached answer for ``token`` (e.g. after a logout)."""
        try:
            key = _key(_strip_bearer(token))
        except InvalidToken:
            return
        with self._lock:
            self._cache.pop(key, None)

    def clear(self) -> None:
        """Forget every cached answer, refusals included."""
        with self._lock:
            self._cache.clear()
            self._refused.clear()

    def _fetch(self, key: bytes, token: str) -> TokenInfo:
        # A concurrent flight may have stored the answer between our miss and this call.
        now = self._clock()
        with self._lock:
            entry = self._cache.get(key)
            if entry is not None and entry[1] > now:
                return entry[0]
        try:
            info = self._client.token_info(token)
        except InvalidToken as exc:  # a 4xx, or an answer with an unreadable exp
            if exc.definite:
                self._remember_refusal(key, exc.reason or "rejected", now)
            raise
        refusal = self._refusal(info, now)
        if refusal is not None:
            reason, definite = refusal
            log.debug("token refused: %s", reason)
            if definite:
                self._remember_refusal(key, reason, now)
            raise InvalidToken(reason=reason, definite=definite)
        valid_until = now + self._max_ttl
        if info.expires_at is not None:
            valid_until = min(valid_until, info.expires_at.timestamp())
        if valid_until > now:
            with self._lock:
                lru.put(self._cache, key, (info, valid_until), self._max_entries)
        return info

    def _remember_refusal(self, key: bytes, reason: str, now: float) -> None:
        if self._refusal_ttl <= 0:
            return
        with self._lock:
            lru.put(self._refused, key, (reason, now + self._refusal_ttl), self._max_entries)

    def _refusal(self, info: TokenInfo, now: float) -> tuple[str, bool] | None:
        """Why *info* refuses its token, and whether that is definite (worth remembering)."""
        if not info.active:
            return "inactive", True
        if info.expires_at is not None and info.expires_at.timestamp() + self._exp_leeway < now:
            return "expired", True
        if info.client_id is None:
            # Absent, or not a string: a garbled answer, not a verdict on this token.
            return "no client id", False
        if info.client_id != self._app_id:
            return "issued for another app", True
        if info.instance_id is None:
            return "no instance id", False
        return None


def _strip_bearer(token: object) -> str:
    if not isinstance(token, str):
        raise InvalidToken(reason="not a string")
    if token[:7].lower() == "bearer ":
        token = token[7:].lstrip(" ")
    # "Bearer" alone: a header whose empty credential a web framework trimmed away.
    if not token or token.lower() == "bearer":
        raise InvalidToken(reason="empty")
    # Checked before hashing, so an oversized header costs nothing.
    if len(token) > MAX_TOKEN_LENGTH:
        raise InvalidToken(reason="too long")
    return token


def _key(token: str) -> bytes:
    try:
        return hashlib.sha256(token.encode()).digest()
    except UnicodeEncodeError:  # lone surrogates
        raise InvalidToken(reason="malformed") from None


def _check_shape(token: str) -> None:
    # Wix tokens are printable ASCII without spaces (e.g. "OauthNG.JWS.eyJ...").
    if not (token.isascii() and token.isprintable()) or " " in token:
        raise InvalidToken(reason="malformed")
