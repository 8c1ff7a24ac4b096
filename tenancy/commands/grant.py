"""``tenancy grant ROLE``: give the runtime role what tenant sessions need."""

from __future__ import annotations

import argparse

from sqlalchemy import text
from sqlalchemy.engine import make_url

from tenancy.commands.database import database_errors, make_engine, safe_url
from tenancy.db.roles import grant_runtime_role
from tenancy.errors import ConfigurationError
from tenancy.settings import ADMIN_URL_VARIABLE, URL_VARIABLE, Settings

NAME = "grant"
HELP = (
    f"grant the runtime role ({URL_VARIABLE}'s user) access to the tenant tables, "
    f"connected as the owner ({ADMIN_URL_VARIABLE}); run after `alembic upgrade heads`, and once "
    "after upgrading from a version without the sealed binding"
)
EPILOG = f"""\
environment:
  {ADMIN_URL_VARIABLE}  the owner role's URL (it owns the tables and grants on them)
  {URL_VARIABLE}                the runtime role's URL; its user is the role granted (or ROLE)

exit codes:
  0  granted
  2  could not grant: unreachable, not PostgreSQL, connected as the runtime role itself,
     the role does not exist or would bypass row-level security, or not allowed
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("role", nargs="?", help=f"the runtime role (default: {URL_VARIABLE}'s user)")
    parser.add_argument("--schema", default="public", help="the schema of the tables (default: public)")
    parser.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="TABLE",
        help="also grant DML on this non-tenant table (repeatable); nothing else is granted",
    )


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    url = settings.require_admin_database_url("tenancy grant")
    if make_url(url).get_backend_name() != "postgresql":
        raise ConfigurationError(
            f"database roles need PostgreSQL, not {safe_url(url)}: set {ADMIN_URL_VARIABLE} to the "
            "owner role's postgresql:// URL"
        )
    role = args.role or (make_url(settings.database_url).username if settings.database_url else None)
    if not role:
        raise ConfigurationError(f"name the runtime role: tenancy grant ROLE ({URL_VARIABLE} has no user)")
    engine = make_engine(url)
    try:
        with database_errors(url), engine.begin() as connection:
            current = connection.execute(text("SELECT current_user")).scalar_one()
            if current == role:
                # The usual cause: TENANCY_ADMIN_DATABASE_URL unset, so the admin URL is DATABASE_URL.
                raise ConfigurationError(
                    f"connected as {role!r}, the runtime role itself: a role cannot grant itself "
                    f"access to tables it does not own; set {ADMIN_URL_VARIABLE} to the owner role's URL"
                )
            grant_runtime_role(connection, role, schema=args.schema, also=args.also)
    finally:
        engine.dispose()
    print(f"granted {role} what tenant sessions need in schema {args.schema}")
    return 0
