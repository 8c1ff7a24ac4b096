"""Every error a user can cause on the command line: one line naming the problem and the fix, exit 2.

Each case runs `tenancy ...` in process (an uncaught exception would fail the test: no traceback
can reach the user) and checks stderr is exactly one `tenancy...` line.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tenancy.commands.main import main
from tenancy.testing.postgres import Database

UNREACHABLE = "postgresql://nobody@127.0.0.1:1/none"
ENV_NAMES = ("DATABASE_URL", "TENANCY_ADMIN_DATABASE_URL", "WIX_APP_ID", "WIX_APP_SECRET", "WIX_API_BASE_URL")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    # Wix credentials that would be accepted, so sync reaches its database checks.
    _env(monkeypatch, WIX_APP_ID="app-id", WIX_APP_SECRET="app-secret")
    monkeypatch.chdir(tmp_path)  # an explicit SQLite file lands here, never in the repository


def _one_line_error(argv: list[str], capsys: pytest.CaptureFixture[str], *expected: str) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("tenancy") and err.count("\n") == 1, err
    for text in expected:
        assert text in err, err
    return err


def _env(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    for name, value in values.items():
        monkeypatch.setenv(name, value)


# -- usage -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], "the following arguments are required: COMMAND"),
        (["sync", "--bogus"], "unrecognized arguments: --bogus"),
        (["sync", "--concurrency", "0"], "--concurrency: must be a whole number >= 1"),
        (["sync", "--every", "soon"], "not a duration: 'soon'"),
        (["sync", "--instance", "not-an-id"], "--instance"),
        (["emulator", "--sites", "-1"], "--sites must be >= 0"),
        (["emulator", "--fault-rate", "0.1", "--fault-kinds", "meteor"], "--fault-kinds: choose from"),
        (["emulator", "--sites-file", "/nonexistent/sites.json"], "cannot start the emulator"),
        (["demo", "--sites", "0"], "--sites must be at least 1"),
        (["demo", "--database-url", "mysql://x@db/app"], "--database-url: cannot use mysql://x@db/app"),
    ],
)
def test_usage_errors(argv: list[str], expected: str, capsys) -> None:
    """Bad options and arguments: one line with the problem and where to read more."""
    _one_line_error(argv, capsys, expected)


def test_emulator_on_a_port_in_use(capsys) -> None:
    """A port already taken: one line, exit 2."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        _one_line_error(["emulator", "--port", str(port)], capsys, "cannot start the emulator")


# -- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["check", "grant", "sync"])
def test_a_url_that_is_not_a_url(command: str, monkeypatch, capsys) -> None:
    """DATABASE_URL that does not parse: named, with how to write one (and no password shown)."""
    _env(monkeypatch, DATABASE_URL="not a url :pw-SECRET")
    err = _one_line_error([command], capsys, "database_url (DATABASE_URL) is not a database URL")
    assert "pw-SECRET" not in err


def test_a_url_scheme_without_a_driver(monkeypatch, capsys) -> None:
    """mysql:// (no driver installed): one line naming the variable and the URLs that work."""
    _env(monkeypatch, DATABASE_URL="mysql://app@db/app")
    _one_line_error(["sync"], capsys, "DATABASE_URL (TENANCY_ADMIN_DATABASE_URL is unset): cannot use")


@pytest.mark.parametrize("command", ["check", "grant", "sync"])
def test_an_unreachable_database(command: str, monkeypatch, capsys) -> None:
    """No server: `cannot reach the database`, the URL and the variable it came from."""
    _env(monkeypatch, DATABASE_URL=UNREACHABLE, TENANCY_ADMIN_DATABASE_URL=UNREACHABLE)
    _one_line_error(
        [command],
        capsys,
        "cannot reach the database postgresql+psycopg://nobody@127.0.0.1:1/none",
        "(TENANCY_ADMIN_",
    )


@pytest.mark.parametrize(
    ("command", "expected"), [("check", "tenancy check audits PostgreSQL"), ("grant", "need PostgreSQL")]
)
def test_check_and_grant_need_postgres(command: str, expected: str, monkeypatch, capsys) -> None:
    """On an explicit SQLite URL there are no roles and no RLS to audit: exit 2, not a finding."""
    _env(monkeypatch, DATABASE_URL="sqlite:///app.db")
    _one_line_error([command], capsys, expected, "postgresql://")


@pytest.mark.parametrize(
    "argv", [["sync", "--all"], ["check"], ["grant", "app"], ["rotate-key", "--start"]], ids=" ".join
)
def test_no_database_configured_is_one_line_and_exit_2(argv: list[str], tmp_path, capsys) -> None:
    """No DATABASE_URL: the command says it needs a database (no silent ./tenancy.db), exit 2."""
    name = "tenancy " + argv[0]
    _one_line_error(argv, capsys, f"{name} needs a database and none is configured", "DATABASE_URL")
    assert list(tmp_path.iterdir()) == []  # no SQLite file made on the side


def test_check_without_a_runtime_role(monkeypatch, capsys) -> None:
    """A DATABASE_URL without a user and no --role: say how to name it."""
    _env(monkeypatch, DATABASE_URL="postgresql://127.0.0.1:1/app")
    _one_line_error(["check"], capsys, "name the runtime role with --role ROLE")


@pytest.mark.postgres
def test_check_and_sync_on_an_unmigrated_database(empty_pg_database: Database, monkeypatch, capsys) -> None:
    """No tenants table: check cannot audit (not `ok`), sync cannot run; both say to migrate."""
    _env(
        monkeypatch,
        TENANCY_ADMIN_DATABASE_URL=empty_pg_database.admin_url,
        DATABASE_URL=empty_pg_database.runtime_url,
    )
    _one_line_error(["check"], capsys, "no tenants table", "alembic upgrade heads")
    _one_line_error(["sync"], capsys, "is not migrated", "alembic upgrade heads")


@pytest.fixture
def migrated(pg_database: Database, monkeypatch) -> Iterator[Database]:
    """The session's migrated database, reached only through DATABASE_URL (the runtime role)."""
    _env(monkeypatch, DATABASE_URL=pg_database.runtime_url)
    yield pg_database


@pytest.mark.postgres
def test_grant_as_the_runtime_role_itself_names_the_real_cause(migrated: Database, capsys) -> None:
    """Without TENANCY_ADMIN_DATABASE_URL, grant connects as the runtime role: say that."""
    _one_line_error(
        ["grant"],
        capsys,
        f"connected as {migrated.runtime!r}, the runtime role itself",
        "TENANCY_ADMIN_DATABASE_URL",
    )


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("role", "expected"), [("nobody_here", "does not exist"), ("postgres", "would bypass")]
)
def test_grant_refuses_a_missing_or_privileged_role(
    migrated: Database, role: str, expected: str, monkeypatch, capsys
) -> None:
    """A role that does not exist, or one that skips RLS: refused, one line."""
    _env(monkeypatch, TENANCY_ADMIN_DATABASE_URL=migrated.admin_url)
    _one_line_error(["grant", role], capsys, expected)


@pytest.mark.postgres
def test_sync_refuses_a_role_that_rls_filters(migrated: Database, capsys) -> None:
    """Only DATABASE_URL (the runtime role): RLS would hide every tenant; name the variable to set."""
    err = _one_line_error(["sync"], capsys, "row-level security filters", "set TENANCY_ADMIN_DATABASE_URL")
    assert migrated.runtime in err


@pytest.mark.postgres
def test_sync_without_wix_credentials(migrated: Database, monkeypatch, capsys) -> None:
    """WIX_APP_ID/WIX_APP_SECRET missing: named."""
    _env(monkeypatch, TENANCY_ADMIN_DATABASE_URL=migrated.admin_url)
    monkeypatch.delenv("WIX_APP_SECRET")
    _one_line_error(["sync"], capsys, "set WIX_APP_ID and WIX_APP_SECRET")


# -- python -m tenancy -------------------------------------------------------------------------


def test_python_dash_m_tenancy_is_the_command_line(tmp_path) -> None:
    """`python -m tenancy` lists the commands, and its errors are one line with exit 2."""
    help_text = subprocess.run(
        [sys.executable, "-m", "tenancy", "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert help_text.returncode == 0
    assert all(name in help_text.stdout for name in ("check", "demo", "emulator", "grant", "sync"))
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": UNREACHABLE}
    failed = subprocess.run(
        [sys.executable, "-m", "tenancy", "check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
        cwd=tmp_path,
    )
    assert failed.returncode == 2
    assert failed.stderr.count("\n") == 1 and "cannot reach the database" in failed.stderr


@pytest.mark.parametrize("command", ["check", "demo", "emulator", "grant", "rotate-key", "sync"])
def test_help_lists_environment_variables_and_exit_codes(command: str, capsys) -> None:
    """`tenancy COMMAND --help` says which variables it reads and what each exit code means."""
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert "environment:" in out and "exit codes:" in out
    assert "  2  " in out
    if command in ("check", "grant", "rotate-key", "sync"):
        assert "TENANCY_ADMIN_DATABASE_URL" in out and "DATABASE_URL" in out


def test_top_level_help_lists_environment_variables_and_exit_codes(capsys) -> None:
    """`tenancy --help` names the variables, every exit code and every command."""
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "environment" in out and "exit codes:" in out
    for text in ("DATABASE_URL", "TENANCY_ADMIN_DATABASE_URL", "WIX_APP_ID", "WIX_APP_SECRET"):
        assert text in out
    for code in ("0", "1", "2", "130"):
        assert f"  {code}  " in out
    for command in ("check", "demo", "emulator", "grant", "rotate-key", "sync"):
        assert f"    {command} " in out


def test_sync_help_says_a_stopped_run_exits_1_and_what_counts_towards_removal(capsys) -> None:
    """The exit code of a run stopped by a Wix outage, and Get App Instance's 404 as "app gone"."""
    assert main(["sync", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "the run stopped early (--outage-after)" in out
    assert "Get App Instance answered 404" in out
