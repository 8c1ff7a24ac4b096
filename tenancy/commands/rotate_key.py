"""``tenancy rotate-key``: roll the database binding key without downtime.

``--start`` adds a new key (new seals use it; every unretired key still verifies), then roll
your processes (or ``--export`` the key to the deployments that hold it in
``TENANCY_BINDING_KEY``); ``--finish`` retires every older key: a process still sealing with
one sees no rows from then on.
"""

from __future__ import annotations

import argparse
import os

from sqlalchemy import text
from sqlalchemy.engine import make_url

from tenancy.commands.database import database_errors, make_engine
from tenancy.errors import ConfigurationError
from tenancy.postgres.binding import ENV_VAR, SCHEMA, add_key, newest_key
from tenancy.settings import ADMIN_URL_VARIABLE, URL_VARIABLE, Settings, safe_url

NAME = "rotate-key"
HELP = (
    f"rotate the database binding key (connected as the owner, {ADMIN_URL_VARIABLE}): "
    "--start adds a new key, --finish retires the older ones, --export FILE writes the newest "
    f"key for {ENV_VAR}"
)
EPILOG = f"""\
environment:
  {ADMIN_URL_VARIABLE}  the owner role's URL (only it can read or add keys; default:
                              {URL_VARIABLE}, which is refused unless it is the owner)

a rotation without downtime:
  tenancy rotate-key --start            add a key; old and new both verify
  tenancy rotate-key --export FILE      the new {ENV_VAR} value (file mode 0600)
  ... restart every process (with the new {ENV_VAR} where it is configured) ...
  tenancy rotate-key --finish           retire the older keys: their seals bind nothing

exit codes:
  0  done
  2  could not: unreachable, not PostgreSQL, not migrated, FILE exists, or not allowed
"""


def configure(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--start", action="store_true", help="add a new key; old keys keep verifying")
    group.add_argument("--finish", action="store_true", help="retire every key but the newest")
    group.add_argument(
        "--export",
        metavar="FILE",
        help="write the newest key (the TENANCY_BINDING_KEY value) to a new file, mode 0600",
    )


def run(args: argparse.Namespace) -> int:
    url = Settings.from_env().require_admin_database_url("tenancy rotate-key")
    if make_url(url).get_backend_name() != "postgresql":
        raise ConfigurationError(
            f"the binding key exists on PostgreSQL only, not {safe_url(url)}: set {ADMIN_URL_VARIABLE}"
        )
    engine = make_engine(url)
    try:
        with database_errors(url), engine.begin() as connection:
            if args.start:
                key_id = add_key(connection)
                print(
                    f"added binding key {key_id}; roll your processes (and TENANCY_BINDING_KEY), "
                    "then run `tenancy rotate-key --finish`"
                )
            elif args.finish:
                retired = connection.execute(
                    text(
                        f"UPDATE {SCHEMA}.binding_keys SET retired_at = now() WHERE retired_at IS NULL"
                        f" AND key_id < (SELECT max(key_id) FROM {SCHEMA}.binding_keys"
                        " WHERE retired_at IS NULL)"
                    )
                ).rowcount
                print(f"retired {retired} older binding key(s)")
            else:
                key = newest_key(connection)
                if key is None:
                    raise ConfigurationError("no binding key: run `alembic upgrade heads` first")
                _write_secret(args.export, key.as_text())
                print(f"wrote binding key {key.key_id} to {args.export}")
    finally:
        engine.dispose()
    return 0


def _write_secret(path: str, value: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigurationError(f"{path} exists; refusing to overwrite it") from None
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
