"""Apply verified Wix events to the ``tenants`` table at once (the sync catches up later).

``AppInstalled`` registers the tenant (or reactivates it) and makes it due for sync; plan events
make it due, so the next ``tenancy sync`` fetches the new plan; ``AppRemoved`` marks it
``removed`` and starts its retention (``removed_at``) — its data stays until
``tenancy purge``. ``AppInstalled`` with ``originInstanceId`` records the duplicated site's
origin. Unknown event types are ignored. Every action is idempotent, because Wix delivers
events more than once.

Wix also delivers them late and out of order, so events apply in the order of their own
issue time (the JWT's ``iat``), per tenant: the row keeps the time of the newest event applied
(``tenants.last_event_at``) and an event issued before it is logged and ignored (``"stale"``);
it never overrides a newer one (an old ``AppInstalled`` never undoes a later ``AppRemoved``).
Events issued in the same second apply in arrival order (``iat`` has one-second resolution).
An event without a usable ``iat`` (none of Wix's) applies in arrival order and moves nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Literal

from sqlalchemy import Engine

from tenancy.tenant_sync.store import (
    event_is_stale,
    origin_instance_id,
    record_origin,
    record_removal,
    register_instances,
    update_tenant,
    update_tenant_for_event,
)
from tenancy.wix.webhooks import WixEvent

log = logging.getLogger("tenancy.events")

__all__ = ["PLAN_EVENTS", "apply_event"]

PLAN_EVENTS = frozenset(
    {
        "PaidPlanPurchased",
        "PaidPlanChanged",
        "PaidPlanAutoRenewalCancelled",
        "PlanConvertedToPaid",
        "PlanReactivated",
        "PlanTransferred",
    }
)

Action = Literal["refresh", "removed", "ignored", "stale"]


def apply_event(engine: Engine, event: WixEvent, *, now: dt.datetime | None = None) -> Action:
    """Update ``tenants`` for *event* on the admin *engine*; returns what was done.

    ``"stale"``: the tenant has already applied an event issued after this one; nothing changed.
    """
    now = now or dt.datetime.now(dt.UTC)
    if event.event_type == "AppInstalled" or event.event_type in PLAN_EVENTS:
        values = {
            "status": "active",
            "last_synced_at": None,  # due for sync at once
            "next_attempt_at": None,
            "consecutive_refusals": 0,
            "removed_at": None,  # reinstalled within retention: the data is still there
        }
        action: Action = "refresh"
    elif event.event_type == "AppRemoved":
        values = {"status": "removed", "next_attempt_at": None}
        action = "removed"
    else:
        return "ignored"
    event_at = _issued_at(event)
    with engine.begin() as conn:
        register_instances(conn, [event.instance_id], now=now)
        if event_at is not None and event_is_stale(conn, event.instance_id, event_at):
            log.info(
                "Wix event %s for instance %s issued at %s is older than the last one applied: ignored",
                event.event_type,
                event.instance_id,
                event_at.isoformat(),
            )
            return "stale"
        if action == "removed":
            record_removal(conn, event.instance_id, now=now)  # before the status says removed
        if event_at is None:
            update_tenant(conn, event.instance_id, values)
        else:
            update_tenant_for_event(conn, event.instance_id, values, event_at=event_at)
        origin = origin_instance_id(event.payload.get("originInstanceId"))
        if event.event_type == "AppInstalled" and origin is not None:
            # A duplicated site: `tenancy sync` copies the origin's rows (tenancy.lifecycle),
            # not this request, which must answer Wix within 1250 ms.
            record_origin(conn, event.instance_id, origin)
    return action


def _issued_at(event: WixEvent) -> dt.datetime | None:
    if event.issued_at is None:
        return None
    try:
        return dt.datetime.fromtimestamp(event.issued_at, tz=dt.UTC)
    except (OverflowError, OSError, ValueError):  # finite, but beyond datetime's range
        return None
