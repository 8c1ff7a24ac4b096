"""``tenancy check``: audit a live database; exit 1 on any finding."""

from __future__ import annotations

import argparse
import json

from sqlalchemy import create_engine

from tenancy.db.audit import audit
from tenancy.errors import ConfigurationError
from tenancy.settings import Settings

NAME = "check"
HELP = (
    "audit a live PostgreSQL database: runtime role privileges, RLS enabled + forced + policy "
    "on every tenant table, keys that lead with instance_id; exit 1 on a finding"
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--role", help="the runtime role (default: the user of DATABASE_URL)")
    parser.add_argument("--schema", default="public")
    parser.add_argument("--json", action="store_true", help="print findings as JSON")


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    role = args.role or create_engine(settings.database_url).url.username
    if not role:
        raise ConfigurationError("name the runtime role with --role (DATABASE_URL has no user)")
    engine = create_engine(settings.admin_database_url)
    try:
        with engine.connect() as connection:
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
