"""Helpers for the sync tests: a migrated database per test, seeding, rows, subprocess runs."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, select

from tenancy.emulator import Emulator
from tenancy.tenant_sync.job import Backoff
from tenancy.tenant_sync.store import register_instances
from tenancy.tenants.model import Tenant
from tenancy.testing.postgres import fresh_database
from tests.conftest import migrate

ROOT = Path(__file__).resolve().parents[1]

TINY = Backoff(base=dt.timedelta(milliseconds=1), cap=dt.timedelta(milliseconds=2))
"""A backoff of milliseconds: failed tenants are due again almost at once."""


@dataclass
class SyncDb:
    """A migrated database of one test: its admin URL and an engine on it."""

    url: str
    engine: Engine


@contextmanager
def migrated_database(pool_size: int = 10) -> Iterator[SyncDb]:
    """A fresh database, migrated, with an admin engine of ``pool_size`` connections."""
    with fresh_database() as database:
        engine = create_engine(database.admin_url, pool_size=pool_size)
        migrate(engine)
        yield SyncDb(database.admin_url, engine)
        engine.dispose()


def seed(engine: Engine, instance_ids: Iterable[str | uuid.UUID]) -> None:
    """Register tenants (active, never synced), as token registration would."""
    with engine.begin() as conn:
        register_instances(conn, [uuid.UUID(str(i)) for i in instance_ids], now=dt.datetime.now(dt.UTC))


def rows(engine: Engine) -> dict[uuid.UUID, dict[str, Any]]:
    """Every tenant row as a dict, by instance id."""
    with engine.connect() as conn:
        result = conn.execute(select(Tenant.__table__))
        return {row.instance_id: dict(row._mapping) for row in result}


def consistent(row: dict[str, Any]) -> bool:
    """Whether the row is either untouched (never synced) or fully written from its raw body."""
    raw = row["raw"]
    if raw is None:
        return row["last_synced_at"] is None and row["site_display_name"] is None
    site, instance = raw.get("site") or {}, raw.get("instance") or {}
    return (
        row["last_synced_at"] is not None
        and row["site_display_name"] == site.get("siteDisplayName")
        and row["site_id"] == site.get("siteId")
        and row["app_version"] == instance.get("appVersion")
        and row["permissions"] == instance.get("permissions")
    )


def env_for(emu: Emulator, url: str) -> dict[str, str]:
    """Environment for a `tenancy sync` subprocess against the emulator and database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WIX_", "TENANCY_", "DATABASE_URL"))}
    env.update(
        DATABASE_URL=url,
        TENANCY_ADMIN_DATABASE_URL=url,
        WIX_APP_ID=emu.app_id,
        WIX_APP_SECRET=emu.app_secret,
        WIX_API_BASE_URL=emu.base_url,
        PYTHONPATH=str(ROOT),
    )
    return env


def start_sync(emu: Emulator, url: str, *args: str) -> subprocess.Popen[str]:
    """Start `python -m tenancy sync ARGS` as a subprocess (stdout/stderr piped)."""
    return subprocess.Popen(
        [sys.executable, "-m", "tenancy", "sync", *args],
        env=env_for(emu, url),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
