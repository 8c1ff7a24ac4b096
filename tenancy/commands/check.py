"""``tenancy check``: audit a live database; exit 1 on any finding, 2 when it cannot audit."""

from __future__ import annotations

import argparse
import json

from sqlalchemy.engine import make_url

from tenancy.commands.database import database_errors, make_engine
from tenancy.errors import ConfigurationError
from tenancy.postgres.audit import audit
from tenancy.settings import ADMIN_URL_VARIABLE, URL_VARIABLE, Settings, safe_url

NAME = "check"
HELP = (
    "audit a live PostgreSQL database: the runtime role's privileges and settings, RLS enabled "
    "+ forced + the sealed policy on every tenant table (every shard on Citus), keys and indexes "
    "that lead with instance_id, ways around RLS (views, functions, TEMP, CREATE), rules and "
    "SECURITY DEFINER code a tenant's statement fires, and the runtime role's timeouts; "
    "exit 1 on a finding"
)
EPILOG = f"""\
environment:
  {ADMIN_URL_VARIABLE}  the owner role's URL, used to read the catalog (default: {URL_VARIABLE})
  {URL_VARIABLE}                the runtime role's URL; its user is the role audited (or --role)

exit codes:
  0  clean
  1  findings (one per line)
  2  could not audit: unreachable, not PostgreSQL, not migrated (no tenants table or no
     tenant tables), or not allowed
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--role", help=f"the runtime role (default: the user of {URL_VARIABLE})")
    parser.add_argument("--schema", default="public", help="the schema to audit (default: public)")
    parser.add_argument("--json", action="store_true", help="print findings as JSON")


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    url = settings.require_admin_database_url("tenancy check")
    if make_url(url).get_backend_name() != "postgresql":
        raise ConfigurationError(
            f"tenancy check audits PostgreSQL (row-level security), not {safe_url(url)}: set "
            f"{ADMIN_URL_VARIABLE} and {URL_VARIABLE} to postgresql:// URLs"
        )
    role = args.role or (make_url(settings.database_url).username if settings.database_url else None)
    if not role:
        raise ConfigurationError(f"name the runtime role with --role ROLE ({URL_VARIABLE} has no user)")
    engine = make_engine(url)
    try:
        with database_errors(url), engine.connect() as connection:
            findings = audit(connection, runtime_role=role, schema=args.schema)
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps({"ok": not findings, "findings": [f.__dict__ for f in findings]}, indent=2))
    elif findings:
        for finding in findings:
            print(finding)
        print(f"{len(findings)} finding(s)")
    else:
        print(f"ok: runtime role {role!r} and every tenant table in schema {args.schema!r} pass")
    return 1 if findings else 0
