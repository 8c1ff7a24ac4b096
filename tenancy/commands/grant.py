"""``tenancy grant ROLE``: give the runtime role what tenant sessions need."""

from __future__ import annotations

import argparse

from sqlalchemy import create_engine

from tenancy.db.roles import grant_runtime_role
from tenancy.errors import ConfigurationError
from tenancy.settings import Settings

NAME = "grant"
HELP = (
    "grant the runtime role (DATABASE_URL's user) access to the tenant tables, "
    "connected as the owner (TENANCY_ADMIN_DATABASE_URL); run after `alembic upgrade head`"
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("role", nargs="?", help="the runtime role (default: DATABASE_URL's user)")
    parser.add_argument("--schema", default="public")
    parser.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="TABLE",
        help="also grant DML on this non-tenant table (repeatable); nothing else is granted",
    )


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    engine = create_engine(settings.admin_database_url)
    role = args.role or create_engine(settings.database_url).url.username
    if not role:
        raise ConfigurationError("name the runtime role: tenancy grant ROLE")
    try:
        with engine.begin() as connection:
            grant_runtime_role(connection, role, schema=args.schema, also=args.also)
    finally:
        engine.dispose()
    print(f"granted {role} what tenant sessions need in schema {args.schema}")
    return 0
