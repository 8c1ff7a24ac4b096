"""The sync's outage breaker: stop a run when Wix itself is down, not one tenant.

A tenant that fails with :class:`~tenancy.WixUnavailable` (no connection, timeouts, 5xx
after the client's retries) might be that tenant's bad luck; several different tenants
failing so in a row, with nothing succeeding in between, is Wix (or the network) being
down. Charging every remaining tenant a failure and a backoff would then push the whole
table's schedule back for nothing, so after ``threshold`` such tenants the breaker trips:
the run stops, only those tenants carry the failure, and tenants claimed meanwhile are
released untouched.
"""

from __future__ import annotations

import threading

from tenancy.errors import ConfigurationError

__all__ = ["DEFAULT_OUTAGE_AFTER", "OutageBreaker"]

# Three tenants in a row: one is bad luck, two can be, three independent tenants failing the
# same way while none succeeds is the service.
DEFAULT_OUTAGE_AFTER = 3


class OutageBreaker:
    """Counts tenants in a row (in completion order, across workers) that found Wix unavailable.

    Thread-safe. :meth:`unavailable` returns whether that tenant is to be charged the
    failure: ``True`` for the first ``threshold`` of a streak (the last of them trips the
    breaker), ``False`` once it has tripped. Any other outcome (a success, a refusal, a
    429) ends the streak, since it shows Wix answering.
    """

    def __init__(self, threshold: int = DEFAULT_OUTAGE_AFTER) -> None:
        if threshold < 1:
            raise ConfigurationError("threshold must be >= 1")
        self.threshold = threshold
        self._streak = 0
        self._reason: str | None = None
        self._lock = threading.Lock()

    @property
    def tripped(self) -> bool:
        """Whether the run should stop."""
        with self._lock:
            return self._reason is not None

    @property
    def reason(self) -> str | None:
        """What the tenant that tripped the breaker failed with (``None`` if not tripped)."""
        with self._lock:
            return self._reason

    def answered(self) -> None:
        """A tenant got an answer from Wix (good or bad): the streak is over."""
        with self._lock:
            if self._reason is None:
                self._streak = 0

    def unavailable(self, reason: str) -> tuple[bool, bool]:
        """A tenant found Wix unavailable: (charge it, this call tripped the breaker)."""
        with self._lock:
            if self._reason is not None:
                return False, False
            self._streak += 1
            if self._streak < self.threshold:
                return True, False
            self._reason = reason
            return True, True
