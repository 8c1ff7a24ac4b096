"""What a sync run did: counts, failed tenants with reasons, text and JSON forms."""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["MAX_LISTED_FAILURES", "Outcome", "SyncFailure", "SyncReport"]

# Failures beyond this many are counted but not listed, so a run in which Wix is down for
# a million tenants still has a report of bounded size.
MAX_LISTED_FAILURES = 1000

Outcome = Literal["changed", "unchanged", "removed", "failed"]


@dataclass(frozen=True)
class SyncFailure:
    """One tenant that was not synced, and why: the reason (as stored in ``last_sync_error``),
    Wix's HTTP status and ``x-wix-request-id`` when Wix answered (for Wix support)."""

    instance_id: uuid.UUID
    reason: str
    status: int | None = None
    request_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``status`` and ``request_id`` are ``null`` when Wix never answered)."""
        return {
            "instance_id": str(self.instance_id),
            "reason": self.reason,
            "status": self.status,
            "request_id": self.request_id,
        }


@dataclass
class SyncReport:
    """Counts of one run. ``synced`` = ``changed`` + ``unchanged``; ``removed`` counts tenants
    the token endpoint refused that are now marked removed; ``failed`` the others not synced.

    Thread-safe to fill (:meth:`record`); ``interrupted`` is set when a signal stopped the run,
    ``stopped_early`` (a sentence naming Wix's base URL and what failed) when Wix was found
    down and the run stopped without charging the remaining tenants.
    """

    started_at: dt.datetime
    finished_at: dt.datetime | None = None
    changed: int = 0
    unchanged: int = 0
    removed: int = 0
    failed: int = 0
    failures: list[SyncFailure] = field(default_factory=list)
    interrupted: bool = False
    stopped_early: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def synced(self) -> int:
        """Tenants fetched and written (changed or not)."""
        return self.changed + self.unchanged

    @property
    def processed(self) -> int:
        """Tenants claimed and finished in this run, whatever the outcome."""
        return self.synced + self.removed + self.failed

    @property
    def ok(self) -> bool:
        """True when no tenant failed and the run was not stopped by a Wix outage (exit code 0)."""
        return self.failed == 0 and self.stopped_early is None

    def record(
        self,
        outcome: Outcome,
        instance_id: uuid.UUID,
        reason: str | None = None,
        *,
        status: int | None = None,
        request_id: str | None = None,
    ) -> None:
        """Count one tenant's outcome; a failure is listed with its reason, status and request id."""
        with self._lock:
            setattr(self, outcome, getattr(self, outcome) + 1)
            if outcome == "failed" and len(self.failures) < MAX_LISTED_FAILURES:
                failure = SyncFailure(instance_id, reason or "unknown error", status, request_id)
                self.failures.append(failure)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: counts, timestamps and the listed failures."""
        return {
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "synced": self.synced,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "removed": self.removed,
            "failed": self.failed,
            "failures": [failure.to_dict() for failure in self.failures],
            "failures_not_listed": self.failed - len(self.failures),
            "interrupted": self.interrupted,
            "stopped_early": self.stopped_early,
        }

    def to_json(self) -> str:
        """One line of JSON (JSON Lines when ``--every`` prints one per run)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    def summary(self) -> str:
        """A few human lines: the counts, then one line per failed tenant."""
        seconds = (self.finished_at - self.started_at).total_seconds() if self.finished_at else 0.0
        state = "interrupted" if self.interrupted else "stopped early" if self.stopped_early else "done"
        head = (
            f"sync {state} in {seconds:.1f}s: "
            f"{self.synced} synced ({self.changed} changed, {self.unchanged} unchanged), "
            f"{self.removed} removed, {self.failed} failed"
        )
        lines = [head]
        if self.stopped_early:
            lines.append(f"  stopped early: {self.stopped_early}")
        lines += [f"  failed {f.instance_id}: {f.reason}" for f in self.failures]
        if self.failed > len(self.failures):
            lines.append(f"  ... and {self.failed - len(self.failures)} more failures")
        return "\n".join(lines)
