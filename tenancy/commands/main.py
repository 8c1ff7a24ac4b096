"""The ``tenancy`` command line: ``main(argv) -> exit code``.

Exit codes: 0 success, 1 the job ran and found failures (failed tenants, audit
findings), 2 configuration or usage error (one line on stderr: the problem and the fix).
Each subcommand module defines ``EPILOG``: the environment variables it reads and its exit codes,
shown by ``tenancy COMMAND --help``. This module and the subcommands are the
only places that read the environment (through :meth:`tenancy.Settings.from_env`).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import NoReturn

from tenancy.errors import ConfigurationError, TenancyError
from tenancy.settings import ADMIN_URL_VARIABLE, DEFAULT_WIX_API_BASE_URL, URL_VARIABLE

__all__ = ["COMMANDS", "SUMMARIES", "main"]

# Command name -> (module, one line for `tenancy --help`). Only the module of the command
# being run is imported: `tenancy --help` and `tenancy emulator` never load SQLAlchemy's ORM,
# psycopg or requests. Each module's own HELP is the command's full description.
SUMMARIES: dict[str, tuple[str, str]] = {
    "check": ("tenancy.commands.check", "audit a live database: roles, RLS, the sealed policy, keys"),
    "copy": ("tenancy.commands.copy_origin", "copy a duplicated site's origin rows into its tenant"),
    "demo": ("tenancy.commands.demo", "run the product end to end on the embedded default"),
    "emulator": ("tenancy.commands.emulator", "run a local Wix (API and signed webhooks) on loopback"),
    "export": ("tenancy.commands.export", "export a tenant's rows of every tenant table (access request)"),
    "grant": ("tenancy.commands.grant", "grant the runtime role access to the tenant tables"),
    "purge": ("tenancy.commands.purge", "purge tenants past retention, or one now (erasure request)"),
    "rotate-key": ("tenancy.commands.rotate_key", "rotate the database binding key"),
    "sync": ("tenancy.commands.sync", "refresh the tenants table from Wix"),
}
COMMANDS: tuple[str, ...] = tuple(module for module, _ in SUMMARIES.values())
"""Every subcommand's module, in the order `tenancy --help` lists them."""

EXIT_OK, EXIT_FAILURES, EXIT_USAGE = 0, 1, 2

EPILOG = f"""\
environment (`tenancy COMMAND --help` lists what each command reads):
  {URL_VARIABLE}                the runtime role's URL (no default; `tenancy demo` needs none)
  {ADMIN_URL_VARIABLE}  the owner role's URL (default: {URL_VARIABLE})
  WIX_APP_ID, WIX_APP_SECRET  the app's credentials (sync)
  WIX_API_BASE_URL            Wix's API (default: {DEFAULT_WIX_API_BASE_URL}; or `tenancy emulator`)

exit codes:
  0    done
  1    the command ran and found failures (failed tenants, audit findings)
  2    configuration or usage error (one line on stderr: the problem and the fix)
  130  stopped by SIGINT/SIGTERM
"""


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error on one line (the problem and where to read more), exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def _parser(modules: Sequence[ModuleType]) -> argparse.ArgumentParser:
    """The parser; *modules* are the commands to configure fully (the others are only listed)."""
    loaded = {module.NAME: module for module in modules}
    parser = _Parser(
        prog="tenancy",
        description="Multi-tenant data access for a Wix app backend.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, summary) in SUMMARIES.items():
        module = loaded.get(name)
        if module is None:
            sub.add_parser(name, help=summary)
            continue
        cmd = sub.add_parser(
            name,
            help=summary,
            description=module.HELP,
            epilog=module.EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.configure(cmd)
        cmd.set_defaults(_module=module)
    return parser


def _chosen(argv: Sequence[str]) -> list[ModuleType]:
    """The module of the command *argv* names (none for `tenancy --help` or a typo)."""
    for arg in argv:
        if not arg.startswith("-"):
            entry = SUMMARIES.get(arg)
            return [importlib.import_module(entry[0])] if entry is not None else []
    return []


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = _parser(_chosen(args_list))
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args._module.run(args))
    except ConfigurationError as exc:
        print(f"tenancy: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except TenancyError as exc:
        print(f"tenancy: {exc}", file=sys.stderr)
        return EXIT_FAILURES
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if not _is_database_error(exc):
            raise
        # A command that did not explain it: still one line, no traceback.
        from tenancy.commands.database import first_line

        print(f"tenancy: database error: {first_line(exc)}", file=sys.stderr)
        return EXIT_USAGE


def _is_database_error(exc: Exception) -> bool:
    """A SQLAlchemy DBAPIError; SQLAlchemy is not imported for it (it is loaded if one was raised)."""
    errors = sys.modules.get("sqlalchemy.exc")
    return errors is not None and isinstance(exc, errors.DBAPIError)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
