"""``tenancy copy``: copy a duplicated site's data from its origin (``tenancy sync`` does it too).

Exit codes: 0 copied (or nothing to copy), 1 a copy failed (rolled back; listed), 2
configuration or usage error.
"""

from __future__ import annotations

import argparse

from tenancy.commands.database import owner_engine
from tenancy.errors import ConfigurationError, InvalidInstanceId, LifecycleError
from tenancy.instance_ids import parse_instance_id
from tenancy.lifecycle.duplicate import CopyReport, copy_from_origin, copy_pending

NAME = "copy"
HELP = (
    "copy the origin's rows into duplicated sites (tenants with an origin instance and no copy "
    "yet), or into --instance ID (from --origin ID or its recorded origin)"
)
EPILOG = """\
environment:
  TENANCY_ADMIN_DATABASE_URL  the owner role's URL (BYPASSRLS)
  DATABASE_URL                fallback for the above

`tenancy sync` runs the pending copies after each run (--no-copy to leave them to this command).

exit codes:
  0    copied, or nothing to copy
  1    a copy failed (rolled back; rerun after fixing the cause)
  2    configuration or usage error
"""


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the command's options."""
    parser.add_argument("--instance", metavar="ID", help="copy into this tenant only")
    parser.add_argument("--origin", metavar="ID", help="copy from this tenant (default: the recorded origin)")
    add_skip_option(parser, "--skip-table")
    parser.add_argument("--json", action="store_true", help="print the report as one line of JSON on stdout")


def add_skip_option(parser: argparse.ArgumentParser, flag: str) -> None:
    """The repeatable option naming tables a copy leaves out."""
    parser.add_argument(
        flag,
        dest="skip_table",
        action="append",
        default=[],
        metavar="TABLE",
        help="a tenant table not copied to duplicated sites (repeat for more)",
    )


def run(args: argparse.Namespace) -> int:
    """Copy; returns the exit code."""
    try:
        iid = parse_instance_id(args.instance) if args.instance else None
        origin = parse_instance_id(args.origin) if args.origin else None
    except InvalidInstanceId as exc:
        raise ConfigurationError(f"--instance/--origin: {exc}") from None
    if origin is not None and iid is None:
        raise ConfigurationError("--origin needs --instance ID (the tenant to copy into)")
    with owner_engine("tenancy copy") as engine:
        try:
            if iid is None:
                report = copy_pending(engine, skip_tables=args.skip_table)
            else:
                report = CopyReport(
                    [copy_from_origin(engine, iid, origin=origin, skip_tables=args.skip_table)]
                )
        except LifecycleError as exc:
            raise ConfigurationError(str(exc)) from None
    print(report.to_json() if args.json else report.summary(), flush=True)
    return 0 if report.ok else 1
