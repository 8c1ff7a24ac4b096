"""Apply verified Wix events to the ``tenants`` table at once (the sync catches up later).

``AppInstalled`` registers the tenant (or reactivates it) and makes it due for sync; plan events
make it due, so the next ``tenancy sync`` fetches the new plan; ``AppRemoved`` marks it
``removed`` and starts its retention (``removed_at``) — its data stays until
``tenancy purge``. ``AppInstalled`` with ``originInstanceId`` records the duplicated site's
origin. Unknown event types are ignored. Every action is idempotent, because Wix delivers
events more than once and out of order.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from sqlalchemy import Engine

from tenancy.tenant_sync.store import (
    origin_instance_id,
    record_origin,
    record_removal,
    register_instances,
    update_tenant,
)
from tenancy.wix.webhooks import WixEvent

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

Action = Literal["refresh", "removed", "ignored"]


def apply_event(engine: Engine, event: WixEvent, *, now: dt.datetime | None = None) -> Action:
    """Update ``tenants`` for *event* on the admin *engine*; returns what was done."""
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
    with engine.begin() as conn:
        register_instances(conn, [event.instance_id], now=now)
        if action == "removed":
            record_removal(conn, event.instance_id, now=now)  # before the status says removed
        update_tenant(conn, event.instance_id, values)
        origin = origin_instance_id(event.payload.get("originInstanceId"))
        if event.event_type == "AppInstalled" and origin is not None:
            # A duplicated site: `tenancy sync` copies the origin's rows (tenancy.lifecycle),
            # not this request, which must answer Wix within 1250 ms.
            record_origin(conn, event.instance_id, origin)
    return action
