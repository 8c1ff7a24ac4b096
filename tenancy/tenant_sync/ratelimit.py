"""Thread-safe request-rate limits for the sync: a token bucket, and a sliding window per key.

Wix allows 200 requests a minute per app instance (API.md §8): :class:`KeyedRateLimiter`.
The sync also caps its total request rate so a large run does not flood Wix or the
network: :class:`TokenBucket`.

Why not a library (limits, pyrate-limiter): ``limits``' memory storage reads ``time.time()``
directly and runs a background timer thread, so tests could not inject a clock; pyrate-
limiter takes a clock but sleeps with ``time.sleep`` itself, bounds keys only through a
background "leaker" thread, and keeps no least-recently-used cap on the number of keys.
What is needed here (injected clock and sleep, a hard cap on memory, thread safety) is
these two small classes.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Hashable

from tenancy.errors import ConfigurationError

__all__ = ["KeyedRateLimiter", "TokenBucket"]

_EPSILON = 1e-9
_MIN_SLEEP = 1e-6


class TokenBucket:
    """At most ``rate`` acquisitions per second on average, bursts of up to ``burst``.

    :meth:`acquire` blocks (sleeping outside the lock) until a permit is free. ``clock``
    and ``sleep`` are injectable for tests.
    """

    def __init__(
        self,
        rate: float,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ConfigurationError("rate must be > 0")
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._updated = clock()
        self._lock = threading.Lock()

    def _refill(self, now: float) -> None:
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    def try_acquire(self) -> float:
        """Take a permit if one is free (returns 0.0), else the seconds until one will be."""
        with self._lock:
            self._refill(self._clock())
            # A hair below 1 counts as 1: otherwise float rounding can ask for a wait too
            # small to move the clock (a fake clock at 5000.0 + 1e-13 stays 5000.0) forever.
            if self._tokens >= 1 - _EPSILON:
                self._tokens = max(0.0, self._tokens - 1)
                return 0.0
            return (1 - self._tokens) / self.rate

    def acquire(self) -> None:
        """Take a permit, waiting for one if needed."""
        while (wait := self.try_acquire()) > 0:
            self._sleep(wait)


class KeyedRateLimiter:
    """At most ``per_minute`` acquisitions per key (e.g. per app instance) in any 60 seconds.

    A sliding-window log, not a token bucket: a bucket holding a minute's burst lets up to
    twice the limit through in one minute (a full burst, then the refill), which a server
    counting per window (as Wix may: it documents "200 requests per minute, per instance"
    and not how it counts) throttles. Each key keeps the times of its last ``per_minute``
    acquisitions (a bounded deque); the next one waits until the oldest is a minute old.

    At most ``max_keys`` keys are kept, the least recently used dropped first. That cannot
    let an instance exceed its limit in practice: for its log to be dropped, ``max_keys``
    other instances must have been used since, i.e. at the sync's global rate (at most a
    few thousand requests a minute) far more than a minute must have passed. ``clock``
    and ``sleep`` are injectable for tests (the sleep happens outside the lock).
    """

    def __init__(
        self,
        per_minute: int = 200,
        *,
        max_keys: int = 1024,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if per_minute < 1 or max_keys < 1 or window <= 0:
            raise ConfigurationError("per_minute and max_keys must be >= 1 and window > 0")
        self.per_minute = per_minute
        self.window = window
        self._max = max_keys
        self._clock = clock
        self._sleep = sleep
        self._logs: collections.OrderedDict[Hashable, collections.deque[float]] = collections.OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._logs)

    def try_acquire(self, key: Hashable) -> float:
        """Take a permit for ``key`` if one is free (returns 0.0), else the seconds until one is."""
        with self._lock:
            now = self._clock()
            log = self._logs.get(key)
            if log is None:
                log = self._logs[key] = collections.deque(maxlen=self.per_minute)
                while len(self._logs) > self._max:
                    self._logs.popitem(last=False)
            self._logs.move_to_end(key)
            if len(log) == self.per_minute:
                wait = log[0] + self.window - now
                if wait > 0:
                    return wait
            log.append(now)  # the deque's maxlen drops the oldest
            return 0.0

    def acquire(self, key: Hashable) -> None:
        """Take a permit for ``key``, waiting if it has had ``per_minute`` in the last minute."""
        while (wait := self.try_acquire(key)) > 0:
            # At least a microsecond: a wait lost to float rounding must still move the clock.
            self._sleep(max(wait, _MIN_SLEEP))
