"""Log records that carry the tenant: ``instance_id`` on every record emitted for a tenant.

Switch it on once, at startup::

    tenancy.log_instance_ids()        # every record gets .instance_id ("-" outside a tenant)
    logging.basicConfig(format="%(asctime)s %(instance_id)s %(name)s: %(message)s")

or, with ``dictConfig``, put :class:`InstanceIdFilter` on your handlers. While a tenant
session is open (``with sessions.for_instance(...) as session:``), while a web request runs
through :mod:`tenancy.integrations`, and while ``tenancy sync`` works on a tenant, records
carry that tenant's instance id.

This is for logs only: nothing in tenancy reads it to decide which rows a session sees
(a session's tenant is fixed at creation; there is no ambient "current tenant").

The value lives in a :class:`~contextvars.ContextVar` holding a small mutable slot. A web
framework opens a slot per request (:func:`scope`) in the request's own context; code that
runs in a copy of that context (FastAPI's worker threads for sync dependencies and
handlers) fills or reads the same slot, so the tenant resolved in one thread shows on the
records of the next.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

__all__ = [
    "InstanceIdFilter",
    "bind",
    "bound",
    "current_instance_id",
    "log_instance_ids",
    "new_scope",
    "push",
    "scope",
]

NO_TENANT = "-"


class _Slot:
    __slots__ = ("instance_id",)

    def __init__(self, instance_id: uuid.UUID | None = None) -> None:
        self.instance_id = instance_id


_slot: ContextVar[_Slot | None] = ContextVar("tenancy_log_instance_id", default=None)


def current_instance_id() -> uuid.UUID | None:
    """The tenant of the code running now, for logs (``None`` outside a tenant)."""
    slot = _slot.get()
    return None if slot is None else slot.instance_id


@contextmanager
def scope() -> Iterator[None]:
    """A fresh slot for one unit of work (a request, a sync worker), shared with copied contexts."""
    token = _slot.set(_Slot())
    try:
        yield
    finally:
        _reset(token)


def new_scope() -> None:
    """Open a fresh slot in the current context, for good (a request's own task: it ends with it)."""
    _slot.set(_Slot())


def bind(instance_id: uuid.UUID | None) -> None:
    """Set the tenant of the current slot (opening one if there is none), until changed."""
    slot = _slot.get()
    if slot is None:
        _slot.set(_Slot(instance_id))
    else:
        slot.instance_id = instance_id


@contextmanager
def bound(instance_id: uuid.UUID) -> Iterator[None]:
    """The tenant for the duration of a block; the previous value comes back afterwards."""
    restore = push(instance_id)
    try:
        yield
    finally:
        restore()


def push(instance_id: uuid.UUID) -> Callable[[], None]:
    """Set the tenant; returns the function that puts the previous value back."""
    slot = _slot.get()
    if slot is None:
        token = _slot.set(_Slot(instance_id))
        return lambda: _reset(token)
    previous = slot.instance_id
    slot.instance_id = instance_id

    def restore() -> None:
        slot.instance_id = previous

    return restore


def _reset(token: Any) -> None:
    # ValueError: exited in another context than entered (a framework ran the exit elsewhere);
    # that context dies with its task or thread, and nothing leaks into this one.
    with contextlib.suppress(ValueError):
        _slot.reset(token)


class InstanceIdFilter(logging.Filter):
    """A filter that adds ``instance_id`` to every record (``"-"`` outside a tenant).

    Put it on a handler (filters on a logger do not see records of its child loggers);
    it never drops a record.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Add ``record.instance_id``; always keeps the record."""
        if not hasattr(record, "instance_id"):
            iid = current_instance_id()
            record.instance_id = NO_TENANT if iid is None else str(iid)
        return True


_installed = False


def log_instance_ids() -> None:
    """Give every log record an ``instance_id`` attribute, whatever logger or handler (idempotent).

    Wraps the logging record factory, so ``%(instance_id)s`` works in any format string.
    """
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()
    adder = InstanceIdFilter()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        adder.filter(record)
        return record

    logging.setLogRecordFactory(factory)
    _installed = True
