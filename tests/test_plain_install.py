"""A plain `pip install wix-tenancy` (no greenlet) imports, runs every command, and says what async needs."""

from __future__ import annotations

import subprocess
import sys

# Simulates an install without the `async` extra: greenlet cannot be imported.
_WITHOUT_GREENLET = "import sys; sys.modules['greenlet'] = None\n"


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _WITHOUT_GREENLET + code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_import_tenancy_and_every_command_work_without_greenlet() -> None:
    """`import tenancy`, the public names and each command module load without greenlet."""
    result = _python(
        "import importlib, tenancy, tenancy.migrations, tenancy.testing\n"
        "from tenancy.commands.main import COMMANDS\n"
        "for name in COMMANDS: importlib.import_module(name)\n"
        "missing = [n for n in tenancy.__all__ if not hasattr(tenancy, n)]\n"
        "print('missing', missing)\n"
    )
    assert result.returncode == 0, result.stderr
    assert "missing []" in result.stdout


def test_the_async_factory_without_greenlet_says_how_to_install_it() -> None:
    """Building AsyncTenantSessionFactory without greenlet raises ConfigurationError naming the extra."""
    result = _python(
        "import tenancy\n"
        "try:\n"
        "    tenancy.AsyncTenantSessionFactory(None)\n"
        "except tenancy.ConfigurationError as exc:\n"
        "    print('refused:', exc)\n"
    )
    assert result.returncode == 0, result.stderr
    assert (
        "refused: AsyncTenantSessionFactory needs the greenlet library: pip install 'wix-tenancy[async]'"
        in (result.stdout)
    )
