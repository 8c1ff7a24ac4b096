"""Thread-safe request-rate limits for the sync: a token bucket, and one bucket per key.

Wix allows 200 requests a minute per app instance (API.md §8); the sync also caps its
total request rate so a large run does not flood Wix or the network.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Hashable

__all__ = ["KeyedRateLimiter", "TokenBucket"]


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
            raise ValueError("rate must be > 0")
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
            if self._tokens >= 1:
                self._tokens -= 1
                return 0.0
            return (1 - self._tokens) / self.rate

    def acquire(self) -> None:
        """Take a permit, waiting for one if needed."""
        while (wait := self.try_acquire()) > 0:
            self._sleep(wait)


class KeyedRateLimiter:
    """One :class:`TokenBucket` per key (e.g. per app instance), at most ``max_keys`` of them.

    The least recently used bucket is dropped beyond ``max_keys``. That cannot let an
    instance exceed its limit in practice: for its bucket to be dropped, ``max_keys`` other
    instances must have been used since, i.e. at the sync's global rate (at most a few
    thousand requests a minute) far more than a minute must have passed.
    """

    def __init__(
        self,
        per_minute: int = 200,
        *,
        max_keys: int = 1024,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if per_minute < 1 or max_keys < 1:
            raise ValueError("per_minute and max_keys must be >= 1")
        self.per_minute = per_minute
        self._max = max_keys
        self._clock = clock
        self._sleep = sleep
        self._buckets: collections.OrderedDict[Hashable, TokenBucket] = collections.OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._buckets)

    def _bucket(self, key: Hashable) -> TokenBucket:
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = TokenBucket(
                    self.per_minute / 60.0, burst=self.per_minute, clock=self._clock, sleep=self._sleep
                )
                self._buckets[key] = bucket
                while len(self._buckets) > self._max:
                    self._buckets.popitem(last=False)
            self._buckets.move_to_end(key)
            return bucket

    def acquire(self, key: Hashable) -> None:
        """Take a permit for ``key``, waiting if its bucket is empty."""
        self._bucket(key).acquire()
