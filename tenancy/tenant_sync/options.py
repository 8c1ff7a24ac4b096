"""``SyncOptions``: what one sync run does, as one typed, frozen value."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, cast

from tenancy.errors import ConfigurationError
from tenancy.instance_ids import parse_instance_id
from tenancy.tenant_sync.breaker import DEFAULT_OUTAGE_AFTER
from tenancy.tenant_sync.ratelimit import KeyedRateLimiter, TokenBucket
from tenancy.tenant_sync.store import Backoff

__all__ = ["DEFAULT_RECHECK_REMOVED_AFTER", "DEFAULT_STALE_AFTER", "SyncOptions"]

DEFAULT_STALE_AFTER = dt.timedelta(hours=24)
DEFAULT_RECHECK_REMOVED_AFTER = dt.timedelta(days=7)


def utcnow() -> dt.datetime:
    """The sync's default clock: aware UTC now."""
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, kw_only=True)
class SyncOptions:
    """The options of a :func:`tenancy.sync` run; every field has a default.

    Which tenants: ``mode`` ``"due"`` (never synced, or last synced more than
    ``stale_after`` ago, and not waiting out a backoff), ``"all"`` (every tenant not
    attempted since the run started, or since ``since``) or ``"instances"`` (exactly
    ``instances``, registered first if missing; ids are checked here, a bad one raises
    :class:`~tenancy.InvalidInstanceId`).

    How: ``concurrency`` worker threads in all, split across ``processes`` worker processes
    (the calling one included; more than one needs PostgreSQL and a POSIX ``fork``: see
    README "Several workers at once"). A tenant refused ``remove_after`` times in a row is
    marked removed and rechecked every ``recheck_removed_after``; other failures wait out
    ``backoff``; ``outage_after`` tenants in a row finding Wix unavailable stop the run.
    ``rate_limit`` caps Wix requests across every worker (split between processes),
    ``instance_limit`` per instance.

    ``clock`` and ``rng`` are for tests (a fixed time, reproducible jitter).
    """

    mode: Literal["due", "all", "instances"] = "due"
    instances: Sequence[uuid.UUID | str] = ()
    stale_after: dt.timedelta = DEFAULT_STALE_AFTER
    since: dt.datetime | None = None
    concurrency: int = 8
    processes: int = 1
    remove_after: int = 3
    recheck_removed_after: dt.timedelta = DEFAULT_RECHECK_REMOVED_AFTER
    outage_after: int = DEFAULT_OUTAGE_AFTER
    backoff: Backoff = field(default_factory=Backoff)
    rate_limit: TokenBucket | None = None
    instance_limit: KeyedRateLimiter | None = None
    clock: Callable[[], dt.datetime] = utcnow
    rng: random.Random | None = None

    def __post_init__(self) -> None:
        # Accept any iterable of ids (str or UUID); keep a tuple of unique UUIDs.
        ids = tuple(dict.fromkeys(parse_instance_id(i) for i in _iterable(self.instances)))
        object.__setattr__(self, "instances", ids)
        if self.mode not in ("due", "all", "instances"):
            raise ConfigurationError(f"mode must be 'due', 'all' or 'instances', not {self.mode!r}")
        if min(self.concurrency, self.processes, self.remove_after, self.outage_after) < 1:
            raise ConfigurationError(
                "concurrency, processes, remove_after and outage_after must be at least 1"
            )
        if self.processes > self.concurrency:
            raise ConfigurationError(
                f"processes ({self.processes}) must not exceed concurrency ({self.concurrency}): "
                "concurrency counts the worker threads of all processes"
            )
        if (self.mode == "instances") != bool(ids):
            raise ConfigurationError("instance ids go with mode='instances', and it needs at least one")

    @property
    def instance_ids(self) -> tuple[uuid.UUID, ...]:
        """``instances`` as parsed: unique UUIDs, in the order given."""
        return cast(tuple[uuid.UUID, ...], self.instances)


def _iterable(value: Iterable[uuid.UUID | str]) -> Iterable[uuid.UUID | str]:
    if isinstance(value, str | bytes):  # one id passed bare would be split into characters
        raise ConfigurationError("instances takes a sequence of instance ids, not one string")
    return value
