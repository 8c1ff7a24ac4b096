"""Prometheus metrics of a sync run, for node_exporter's textfile collector.

``tenancy sync --metrics-file /var/lib/node_exporter/textfile/tenancy_sync.prom`` writes, after
every run, the run's counts by outcome, its duration and end time, how many tenants are still
due, and the oldest ``last_synced_at`` of an active tenant. The file is written to a temporary
name and renamed over the old one, so the collector never reads half a file. Needs
``prometheus-client`` (``pip install 'wix-tenancy[metrics]'``).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

from tenancy.errors import ConfigurationError
from tenancy.tenant_sync.report import SyncReport
from tenancy.tenant_sync.store import Selection, count_claimable, tenants

__all__ = ["require_prometheus_client", "write_metrics"]

OUTCOMES = ("changed", "unchanged", "removed", "failed")


def require_prometheus_client() -> Any:
    """The ``prometheus_client`` module, or a ConfigurationError naming the extra to install."""
    try:
        import prometheus_client
    except ImportError:
        raise ConfigurationError(
            "--metrics-file needs prometheus-client: pip install 'wix-tenancy[metrics]'"
        ) from None
    return prometheus_client


def write_metrics(
    path: str | Path,
    report: SyncReport,
    engine: Engine,
    *,
    stale_after: dt.timedelta,
    now: dt.datetime | None = None,
) -> None:
    """Write *report* and the table's backlog to *path* in Prometheus text format, atomically."""
    prom = require_prometheus_client()
    now = now or dt.datetime.now(dt.UTC)
    with engine.connect() as conn:
        due = count_claimable(conn, Selection(mode="due", since=now, now=now, stale_before=now - stale_after))
        oldest = conn.execute(
            select(func.min(tenants.c.last_synced_at)).where(tenants.c.status == "active")
        ).scalar_one()
        counts = conn.execute(select(tenants.c.status, func.count()).group_by(tenants.c.status))
        by_status: dict[str, int] = {status: int(n) for status, n in counts}
    registry = prom.CollectorRegistry()

    def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Any:
        return prom.Gauge(name, doc, labels, registry=registry)

    outcomes = gauge("tenancy_sync_tenants", "Tenants by outcome in the last sync run.", ("outcome",))
    for outcome in OUTCOMES:
        outcomes.labels(outcome=outcome).set(getattr(report, outcome))
    finished = report.finished_at or now
    gauge("tenancy_sync_duration_seconds", "Duration of the last sync run.").set(
        (finished - report.started_at).total_seconds()
    )
    gauge("tenancy_sync_last_run_timestamp_seconds", "When the last sync run finished (Unix time).").set(
        finished.timestamp()
    )
    gauge("tenancy_sync_interrupted", "1 if a signal stopped the last run early.").set(
        int(report.interrupted)
    )
    gauge("tenancy_sync_tenants_due", "Tenants due for sync after the last run (the backlog).").set(due)
    if oldest is not None:
        if oldest.tzinfo is None:  # SQLite hands back naive UTC datetimes
            oldest = oldest.replace(tzinfo=dt.UTC)
        gauge(
            "tenancy_sync_oldest_last_synced_timestamp_seconds",
            "The oldest last_synced_at of an active tenant (Unix time).",
        ).set(oldest.timestamp())
    status = gauge("tenancy_tenants", "Tenants in the tenants table by status.", ("status",))
    for name in ("active", "removed"):
        status.labels(status=name).set(by_status.get(name, 0))
    # write_to_textfile writes a temporary file beside *path* and renames it over *path*.
    prom.write_to_textfile(str(path), registry)
