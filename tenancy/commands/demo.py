"""``tenancy demo``: the whole product on the embedded default, in one process.

Migrates a SQLite file, starts the bundled Wix emulator with a few sites, syncs them into
``tenants``, then opens a tenant session from an emulator-issued access token and shows that
tenant's row — and that the session sees no other. No accounts, no network.
"""

from __future__ import annotations

import argparse
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from alembic import command
from sqlalchemy import Engine, func, select

from tenancy.commands.database import make_engine
from tenancy.db.alembic_env import library_config
from tenancy.db.models import Tenant
from tenancy.db.sessions import TenantSessionFactory
from tenancy.emulator import Emulator
from tenancy.errors import ConfigurationError, TenancyWarning
from tenancy.settings import DEFAULT_DATABASE_URL
from tenancy.tenant_sync.job import sync
from tenancy.wix.client import WixClient
from tenancy.wix.resolver import TokenResolver

NAME = "demo"
HELP = (
    "run the product end to end on the embedded default: migrate a SQLite file, start the Wix "
    "emulator, sync its sites, open a tenant session from a token and show that tenant's row"
)

EPILOG = """\
environment: none read (the demo uses --database-url and the bundled emulator, never Wix or
DATABASE_URL)

exit codes:
  0  every emulated site synced and the tenant session saw its row only
  1  a site failed to sync
  2  usage error (e.g. --sites 0, a --database-url that cannot be used)
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url", default=DEFAULT_DATABASE_URL, help=f"default: {DEFAULT_DATABASE_URL}"
    )
    parser.add_argument("--sites", type=int, default=3, help="emulated Wix sites (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the emulated sites")


def _migrate(engine: Engine) -> str:
    # tenancy's own revisions ship in the package: the same migrations as `alembic upgrade heads`.
    cfg = library_config()
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "heads")
    return "tenancy's migrations, alembic upgrade heads"


def run(args: argparse.Namespace) -> int:
    if args.sites < 1:
        raise ConfigurationError("--sites must be at least 1")
    engine = make_engine(args.database_url, variable="--database-url")
    url = engine.url.render_as_string(hide_password=True)
    with _quiet_logs(not getattr(args, "verbose", False)), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TenancyWarning)
        how = _migrate(engine)
        print(f"1. migrated {url} ({how})")
        with Emulator(sites=args.sites, seed=args.seed) as emu:
            print(f"2. Wix emulator on {emu.base_url} with {args.sites} site(s)")
            client = WixClient(emu.app_id, emu.app_secret, base_url=emu.base_url)
            try:
                report = sync(engine, client, mode="instances", instances=emu.instance_ids)
                print(f"3. tenancy sync: {report.summary()}")
                instance_id = emu.instance_ids[0]
                token = emu.mint_token(instance_id)
                sessions = TenantSessionFactory(engine, admin_engine=engine, resolver=TokenResolver(client))
                with sessions.for_token(f"Bearer {token}") as session:
                    print(f"4. for_token(<token of site 1>) -> session of instance {session.tenant_id}")
                    tenants = session.scalars(select(Tenant)).all()
                    total = session.scalar(select(func.count()).select_from(Tenant))
                    print(
                        f"   the session sees {len(tenants)} tenant row(s) of {len(emu.instance_ids)} synced:"
                    )
                    for tenant in tenants:
                        _show(tenant)
                    assert total == 1 and tenants[0].instance_id == session.tenant_id
            finally:
                client.close()
    engine.dispose()
    notes = {str(w.message) for w in caught if issubclass(w.category, TenancyWarning)}
    for note in sorted(notes):
        print(f"note: {note}")
    return 0 if report.ok else 1


@contextmanager
def _quiet_logs(quiet: bool) -> Iterator[None]:
    """The numbered steps say what happened: log lines (Alembic's, the sync's) would interleave
    with them on a terminal. `tenancy -v demo` shows them."""
    loggers = [logging.getLogger(name) for name in ("alembic", "tenancy")] if quiet else []
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _show(tenant: Tenant) -> None:
    fields = (
        "instance_id",
        "status",
        "site_display_name",
        "site_url",
        "locale",
        "payment_currency",
        "app_version",
        "is_free",
        "billing_package_name",
        "billing_cycle",
        "last_synced_at",
    )
    width = max(len(f) for f in fields)
    for name in fields:
        print(f"     {name:<{width}}  {getattr(tenant, name)}")
