"""A run's claim queue: due tenants listed without a lock, each then locked by key.

Shared by the worker threads of one run. A refill lists the next batch of due tenants in
claim order (one read, no lock); each worker then locks the next one by ``instance_id``
(:func:`~tenancy.tenant_sync.store.claim_by_key`). A tenant another process holds is
*skipped* (one statement) and left out of later batches while it still shows up as due (it
is theirs); ids a worker of this run holds are *in flight* and left out too.

Compared with one ``SELECT ... ORDER BY ... LIMIT 1 FOR UPDATE SKIP LOCKED`` per tenant:
the same one statement per claim, but a statement by primary key (one shard on Citus,
where a ``FOR UPDATE`` over the ordered listing is refused), and listing costs one
statement per batch.
"""

from __future__ import annotations

import threading
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

from tenancy.tenant_sync.store import Selection
from tenancy.tenant_sync.worker_db import WorkerDb

__all__ = ["ClaimQueue"]


class ClaimQueue:
    """Hands each worker of a run the next tenant to sync, locked (see the module doc)."""

    def __init__(self, selection: Callable[[], Selection], *, batch: int) -> None:
        self.selection = selection
        self.batch = batch
        self._lock = threading.Lock()
        self._queue: deque[uuid.UUID] = deque()
        self._phase = 0
        self._phases = len(selection().phases())
        self._skipped: set[uuid.UUID] = set()
        self._in_flight: set[uuid.UUID] = set()

    def claim(self, db: WorkerDb) -> dict[str, Any] | None:
        """Lock and return the next tenant on *db* (in its transaction); ``None``: none left.

        Call :meth:`done` with its id once the transaction is over.
        """
        while True:
            instance_id = self._next(db)
            if instance_id is None:
                return None
            row = db.claim(self.selection(), instance_id)
            if row is not None:
                return row
            with self._lock:
                self._in_flight.discard(instance_id)
                self._skipped.add(instance_id)

    def done(self, instance_id: uuid.UUID) -> None:
        """The transaction that held *instance_id* is over (committed or rolled back)."""
        with self._lock:
            self._in_flight.discard(instance_id)

    def _next(self, db: WorkerDb) -> uuid.UUID | None:
        with self._lock:
            while not self._queue:
                if self._phase >= self._phases:
                    return None
                # Room for the ids left out below, so a full batch can still come back.
                limit = self.batch + len(self._skipped) + len(self._in_flight)
                listed = db.list_candidates(self.selection(), self._phase, limit=limit)
                # A skipped id no longer listed was done by its holder: forget it.
                self._skipped &= set(listed)
                fresh = [i for i in listed if i not in self._skipped and i not in self._in_flight]
                if not fresh:
                    # Fewer than `limit` rows and none for us: the phase is done for this run.
                    self._phase += 1
                    continue
                self._queue.extend(fresh)
            instance_id = self._queue.popleft()
            self._in_flight.add(instance_id)
            return instance_id
