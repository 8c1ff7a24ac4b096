"""The ``tenancy`` command line: ``main(argv) -> exit code``.

Exit codes: 0 success, 1 the job ran and found failures (failed tenants, audit
findings), 2 configuration or usage error. This module and the subcommands are the
only places that read the environment (through :meth:`tenancy.Settings.from_env`).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from types import ModuleType

from tenancy.errors import ConfigurationError, TenancyError

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


def _parser(modules: Sequence[ModuleType]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tenancy", description="Multi-tenant data access for a Wix app backend."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in modules:
        cmd = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
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
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
