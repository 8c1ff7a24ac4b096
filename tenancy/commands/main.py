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

from sqlalchemy.exc import DBAPIError

from tenancy.commands.database import first_line
from tenancy.errors import ConfigurationError, TenancyError
from tenancy.settings import ADMIN_URL_VARIABLE, DEFAULT_WIX_API_BASE_URL, URL_VARIABLE

__all__ = ["COMMANDS", "main"]

# Subcommand modules, in the order `tenancy --help` lists them.
COMMANDS: tuple[str, ...] = (
    "tenancy.commands.check",
    "tenancy.commands.demo",
    "tenancy.commands.emulator",
    "tenancy.commands.grant",
    "tenancy.commands.rotate_key",
    "tenancy.commands.sync",
)

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
    parser = _Parser(
        prog="tenancy",
        description="Multi-tenant data access for a Wix app backend.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in modules:
        cmd = sub.add_parser(
            module.NAME,
            help=module.HELP,
            description=module.HELP,
            epilog=module.EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.configure(cmd)
        cmd.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    modules = [importlib.import_module(name) for name in COMMANDS]
    parser = _parser(modules)
    try:
        args = parser.parse_args(argv)
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
    except DBAPIError as exc:  # a command that did not explain it: still one line, no traceback
        print(f"tenancy: database error: {first_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
