"""``tenancy purge``: delete the data of removed tenants past retention, or of one tenant now.

Exit codes: 0 every tenant purged (or nothing due), 1 some tenant failed (e.g. its rows stayed
locked; rerun to finish), 2 configuration or usage error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import time
import uuid

from tenancy.commands.database import owner_engine
from tenancy.commands.sync import parse_duration
from tenancy.errors import ConfigurationError, InvalidInstanceId, LifecycleError
from tenancy.instance_ids import parse_instance_id
from tenancy.lifecycle.purge import DEFAULT_BATCH_SIZE, DEFAULT_RETENTION, purge

NAME = "purge"
HELP = (
    "delete every row of every tenant table of removed tenants whose retention is over "
    "(or --instance ID --now: erase a tenant at once), in short batches; the tenant's row "
    "becomes a tombstone"
)
EPILOG = """\
environment:
  TENANCY_ADMIN_DATABASE_URL  the owner role's URL (BYPASSRLS)
  DATABASE_URL                fallback for the above

Run it daily (cron, a Kubernetes CronJob). A killed run leaves nothing half done that a rerun
does not finish; running it twice purges nothing twice.

exit codes:
  0    every due tenant purged (or none due); a dry run always
  1    some tenant could not be purged (listed; rerun later)
  2    configuration or usage error
"""
EXIT_OK, EXIT_FAILURES = 0, 1

log = logging.getLogger("tenancy.purge")


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the command's options."""
    parser.add_argument(
        "--retention",
        type=parse_duration,
        default=DEFAULT_RETENTION,
        metavar="DURATION",
        help="keep a removed tenant's data this long after its removal (default: 30d)",
    )
    parser.add_argument(
        "--instance",
        nargs="+",
        metavar="ID",
        default=[],
        help="only these tenants (with --now: whatever their status)",
    )
    parser.add_argument(
        "--now",
        action="store_true",
        help="erase the --instance tenants at once, whatever their status or retention (a deletion request)",
    )
    parser.add_argument("--dry-run", action="store_true", help="count the rows per table; delete nothing")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        metavar="ROWS",
        help=f"rows per delete, each its own transaction (default: {DEFAULT_BATCH_SIZE})",
    )
    parser.add_argument(
        "--lock-timeout",
        type=parse_duration,
        default=dt.timedelta(seconds=1),
        metavar="DURATION",
        help="longest wait for a batch's locks before retrying it (default: 1s)",
    )
    parser.add_argument(
        "--pause",
        type=parse_duration,
        default=dt.timedelta(0),
        metavar="DURATION",
        help="sleep after every batch, leaving the database to other tenants' queries (default: 0)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as one line of JSON on stdout")


def _instances(values: list[str]) -> list[uuid.UUID]:
    try:
        return [parse_instance_id(value) for value in values]
    except InvalidInstanceId as exc:
        raise ConfigurationError(f"--instance: {exc}") from None


def run(args: argparse.Namespace) -> int:
    """Purge once; returns the exit code."""
    instances = _instances(args.instance)
    if args.now and not instances:
        raise ConfigurationError("--now erases the tenants named by --instance ID: name at least one")
    if args.batch_size < 1:
        raise ConfigurationError(f"--batch-size must be >= 1, got {args.batch_size}")
    last = [0.0]

    def on_batch(iid: uuid.UUID, table: str, deleted: int) -> None:
        if time.monotonic() - last[0] >= 1.0:  # progress on stderr, at most once a second
            last[0] = time.monotonic()
            log.info("purge: %s: %s: %d row(s) deleted", iid, table, deleted)

    with owner_engine("tenancy purge") as engine:
        try:
            report = purge(
                engine,
                retention=args.retention,
                instances=instances,
                immediately=args.now,
                dry_run=args.dry_run,
                batch_size=args.batch_size,
                lock_timeout=args.lock_timeout,
                pause=args.pause,
                on_batch=on_batch,
            )
        except LifecycleError as exc:
            raise ConfigurationError(str(exc)) from None
    print(report.to_json() if args.json else report.summary(), flush=True)
    return EXIT_OK if report.ok else EXIT_FAILURES
