"""``tenancy grant ROLE``: give the runtime role what tenant sessions need."""

from __future__ import annotations

import argparse
import sys

from sqlalchemy import text
from sqlalchemy.engine import make_url

from tenancy.commands.database import database_errors, make_engine
from tenancy.errors import ConfigurationError
from tenancy.postgres.roles import grant_runtime_role
from tenancy.postgres.timeouts import DEFAULT_TIMEOUTS, role_timeouts, set_role_timeouts, validate_timeout
from tenancy.settings import ADMIN_URL_VARIABLE, URL_VARIABLE, Settings, safe_url

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

timeouts:
  lock_timeout, statement_timeout and idle_in_transaction_session_timeout become the runtime
  role's defaults (ALTER ROLE ... SET): the options' values, else the role's own, else the
  defaults above; 0 turns one off, which `tenancy check` reports. Without CREATEROLE they are
  set as the role itself through {URL_VARIABLE}; else the statements for a superuser are printed.

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
    for name, default in DEFAULT_TIMEOUTS.items():
        parser.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            metavar="TIME",
            help=f"the runtime role's {name}, e.g. 200ms (default: the role's own, else {default})",
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
    wanted = {name: validate_timeout(name, v) for name in DEFAULT_TIMEOUTS if (v := getattr(args, name))}
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
            left = grant_runtime_role(connection, role, schema=args.schema, also=args.also, timeouts=wanted)
        if left and settings.database_url:
            left = _as_the_role_itself(settings.database_url, role, wanted, left)
        with database_errors(url), engine.connect() as connection:
            in_force = role_timeouts(connection, role)
    finally:
        engine.dispose()
    print(f"granted {role} what tenant sessions need in schema {args.schema}")
    print("timeouts: " + ", ".join(f"{name} = {value}" for name, value in sorted(in_force.items())))
    for statement in left:
        print(
            f"tenancy grant: could not set a timeout (needs CREATEROLE); run as a superuser: {statement}",
            file=sys.stderr,
        )
    return 0


def _as_the_role_itself(runtime_url: str, role: str, wanted: dict[str, str], left: list[str]) -> list[str]:
    """A role may set its own defaults without CREATEROLE: set the timeouts the owner could not
    through the runtime role's own URL (when it is that role's); returns what is still left."""
    if make_url(runtime_url).username != role:
        return left
    engine = make_engine(runtime_url)
    try:
        with database_errors(runtime_url), engine.begin() as connection:
            still = set_role_timeouts(connection, role, "CURRENT_USER", wanted)
    except ConfigurationError:
        return left  # e.g. the role's password is not in the URL: the grant itself stands
    finally:
        engine.dispose()
    return left if still else []
