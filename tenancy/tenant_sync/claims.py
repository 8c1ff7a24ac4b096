"""A run's claim queue: due tenants listed without a lock, each then locked by key.

Shared by the worker threads of one run. A refill lists the next batch of due tenants in
claim order (one read, no lock); each worker then locks the next one by ``instance_id``
(:func:`~tenancy.tenant_sync.store.claim_by_key`). A tenant another process holds is
*skipped* (one statement) and left out of later batches while it still shows up as due (it
is theirs); ids a worker of this run holds are *in flight* and left out too.

The worker processes of one run (``processes > 1``) list the same due tenants; each would try
to claim every one of them, and half the claims of two processes would come back empty (the
other process had it, or was about to). So each process has a *share* of the ids (a hash of
the id, the same in every process) and queues only those of its share while a listing holds
any; a listing with none of its share left (the others are behind) it takes in reverse
order, meeting their owners from the other end. A process that dies leaves its share to the
others that way.

Compared with one ``SELECT ... ORDER BY ... LIMIT 1 FOR UPDATE SKIP LOCKED`` per tenant:
the same one statement per claim, but a statement by primary key (one shard on Citus,
where a ``FOR UPDATE`` over the ordered listing is refused), and listing costs one
statement per batch.
"""

from __future__ import annotations

import threading
import uuid
import zlib
from collections import deque
from collections.abc import Callable
from typing import Any

from tenancy.tenant_sync.store import Selection
from tenancy.tenant_sync.worker_db import WorkerDb

__all__ = ["ClaimQueue"]


class ClaimQueue:
    """Hands each worker of a run the next tenant to sync, locked (see the module doc)."""

    def __init__(
        self, selection: Callable[[], Selection], *, batch: int, share: tuple[int, int] = (0, 1)
    ) -> None:
        self.selection = selection
        self.batch = batch
        self.share, self.shares = share  # this process's share, of how many (see the module doc)
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

    def _share_of(self, instance_id: uuid.UUID) -> int:
        return zlib.crc32(instance_id.bytes) % self.shares

    def done(self, instance_id: uuid.UUID) -> None:
        """The transaction that held *instance_id* is over (committed or rolled back)."""
        with self._lock:
            self._in_flight.discard(instance_id)

    def _next(self, db: WorkerDb) -> uuid.UUID | None:
        with self._lock:
            while not self._queue:
                if self._phase >= self._phases:
                    return None
                # Room for the ids left out below, so a full batch can still come back: ours in
                # flight, theirs (about as many per process), the skipped, the other shares.
                limit = (self.batch + len(self._in_flight)) * self.shares + len(self._skipped)
                listed = db.list_candidates(self.selection(), self._phase, limit=limit)
                # A skipped id no longer listed was done by its holder: forget it.
                self._skipped &= set(listed)
                fresh = [i for i in listed if i not in self._skipped and i not in self._in_flight]
                if not fresh:
                    # Fewer than `limit` rows and none for us: the phase is done for this run.
                    self._phase += 1
                    continue
                mine = [i for i in fresh if self._share_of(i) == self.share]
                self._queue.extend(mine or reversed(fresh))
            instance_id = self._queue.popleft()
            self._in_flight.add(instance_id)
            return instance_id
