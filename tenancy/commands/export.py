"""``tenancy export``: write one tenant's rows of every tenant table as JSON Lines + a manifest.

Exit codes: 0 written, 2 configuration or usage error.
"""

from __future__ import annotations

import argparse
import logging

from tenancy.commands.database import owner_engine
from tenancy.errors import ConfigurationError, InvalidInstanceId, LifecycleError
from tenancy.instance_ids import parse_instance_id
from tenancy.lifecycle.export import MANIFEST, export_tenant

NAME = "export"
HELP = (
    "write a tenant's rows of every tenant table to DIR/<table>.jsonl and DIR/manifest.json "
    "(a site owner's data request), streamed"
)
EPILOG = f"""\
environment:
  TENANCY_ADMIN_DATABASE_URL  the owner role's URL (BYPASSRLS)
  DATABASE_URL                fallback for the above

{MANIFEST} (tables, row counts, columns and types, exported_at) is written last.

exit codes:
  0    written
  2    configuration or usage error
"""

log = logging.getLogger("tenancy.export")


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the command's options."""
    parser.add_argument("--instance", required=True, metavar="ID", help="the tenant to export")
    parser.add_argument(
        "--output", metavar="DIR", help="directory to write (created; default: tenancy-export-<ID>)"
    )


def run(args: argparse.Namespace) -> int:
    """Export one tenant; returns the exit code."""
    try:
        iid = parse_instance_id(args.instance)
    except InvalidInstanceId as exc:
        raise ConfigurationError(f"--instance: {exc}") from None
    output = args.output or f"tenancy-export-{iid}"
    with owner_engine("tenancy export") as engine:
        try:
            manifest = export_tenant(
                engine, iid, output, on_table=lambda t, n: log.info("export: %s: %d row(s)", t, n)
            )
        except LifecycleError as exc:
            raise ConfigurationError(str(exc)) from None
    print(f"export: {manifest.rows} row(s) of {len(manifest.tables)} table(s) in {output}/", flush=True)
    return 0
