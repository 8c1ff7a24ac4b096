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

    def idle_full(self, now: float) -> bool:
        """Whether the bucket would be full at ``now`` (forgetting it then loses nothing)."""
        with self._lock:
            return self._tokens + (now - self._updated) * self.rate >= self.burst


class KeyedRateLimiter:
    """One :class:`TokenBucket` per key (e.g. per app instance), bounded in memory.

    Buckets that have refilled completely are interchangeable with new ones, so they are
    dropped when more than ``max_keys`` exist; if all are busy the oldest is dropped
    anyway (a sync touches each instance a few times per run, far below the limit).
    """

    def __init__(
        self,
        per_minute: int = 200,
        *,
        max_keys: int = 10_000,
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
                self._evict()
            self._buckets.move_to_end(key)
            return bucket

    def _evict(self) -> None:
        # Lock held. Oldest first: the least recently used buckets are the likeliest full.
        now = self._clock()
        while len(self._buckets) > self._max:
            oldest_key, oldest = next(iter(self._buckets.items()))
            if not oldest.idle_full(now):
                full = [k for k, b in self._buckets.items() if b.idle_full(now)]
                if full:
                    del self._buckets[full[0]]
                    continue
            del self._buckets[oldest_key]

    def acquire(self, key: Hashable) -> None:
        """Take a permit for ``key``, waiting if its bucket is empty."""
        self._bucket(key).acquire()
