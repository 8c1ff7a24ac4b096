"""`tenancy sync` on the command line: exit codes, --json, several processes, kills and signals."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import signal
import struct
import subprocess
import sys
import termios
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from tenancy.commands.main import main
from tenancy.emulator import Emulator
from tenancy.errors import TenancyWarning
from tenancy.tenants.model import Tenant
from tests.conftest import migrate
from tests.sync_helpers import SyncDb, consistent, env_for, migrated_database, rows, seed, start_sync

pytestmark = pytest.mark.postgres


@pytest.fixture
def db(pg_server: str) -> Iterator[SyncDb]:
    with migrated_database(pool_size=4) as database:
        yield database


def _use(monkeypatch: pytest.MonkeyPatch, emu: Emulator, url: str) -> None:
    for name, value in env_for(emu, url).items():
        if name.startswith(("WIX_", "TENANCY_", "DATABASE_URL")):
            monkeypatch.setenv(name, value)


def _synced(engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).where(Tenant.last_synced_at.is_not(None))).scalar_one())


def test_json_report_and_exit_1_when_a_tenant_keeps_failing(db, monkeypatch, capsys) -> None:
    """One permanently failing tenant: exit 1, listed in the JSON on stdout, the others synced."""
    with Emulator(sites=5, seed=2) as emu:
        seed(db.engine, emu.instance_ids)
        bad = emu.instance_ids[0]
        emu.set_faults(rate=1.0, kinds=("503",), instance_id=bad)
        _use(monkeypatch, emu, db.url)
        code = main(["sync", "--json", "--concurrency", "2", "--timeout", "2"])
        out = capsys.readouterr().out
    assert code == 1
    report = json.loads(out)  # nothing but the report on stdout
    assert (report["synced"], report["failed"], report["removed"]) == (4, 1, 0)
    assert report["failures"][0]["instance_id"] == bad and "HTTP 503" in report["failures"][0]["reason"]
    row = rows(db.engine)[uuid.UUID(bad)]
    assert "HTTP 503" in row["last_sync_error"] and row["consecutive_failures"] == 1
    assert emu.app_secret not in out


def test_summary_text_and_exit_0(db, monkeypatch, capsys) -> None:
    """A clean run prints the summary line and exits 0; a second due run finds nothing to do."""
    with Emulator(sites=3, seed=2) as emu:
        seed(db.engine, emu.instance_ids)
        _use(monkeypatch, emu, db.url)
        assert main(["sync"]) == 0
        assert "3 synced (3 changed, 0 unchanged), 0 removed, 0 failed" in capsys.readouterr().out
        assert main(["sync"]) == 0
        assert "0 synced" in capsys.readouterr().out
        assert main(["sync", "--all"]) == 0
        assert "3 synced (0 changed, 3 unchanged)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["sync", "--instance", "not-a-uuid"],
        ["sync", "--concurrency", "0"],
        ["sync", "--every", "soon"],
        ["sync", "--all", "--instance", str(uuid.uuid4())],
    ],
)
def test_usage_errors_exit_2_and_write_nothing(db, monkeypatch, argv) -> None:
    """Bad options or an invalid instance id exit 2 before anything is written."""
    with Emulator(sites=1) as emu:
        _use(monkeypatch, emu, db.url)
        assert main(argv) == 2
    assert rows(db.engine) == {}


def test_instance_registers_and_syncs_new_ids(db, monkeypatch, capsys, caplog) -> None:
    """--instance ID... seeds tenants known from elsewhere and syncs them at once, logging how many
    it really registered (PostgreSQL's rowcount of -1 was summed before)."""
    caplog.set_level("INFO", logger="tenancy.sync")
    with Emulator(sites=3, seed=6) as emu:
        _use(monkeypatch, emu, db.url)
        assert main(["sync", "--instance", *emu.instance_ids[:2], "--json"]) == 0
        assert "registered 2 new tenant(s)" in caplog.messages
        caplog.clear()
        assert main(["sync", "--instance", *emu.instance_ids, "--json"]) == 0
        assert "registered 1 new tenant(s)" in caplog.messages
    assert json.loads(capsys.readouterr().out.splitlines()[0])["synced"] == 2
    assert set(rows(db.engine)) == {uuid.UUID(i) for i in emu.instance_ids}


def test_wrong_app_credentials_exit_2(db, monkeypatch, capsys) -> None:
    """Wix refusing WIX_APP_ID/WIX_APP_SECRET is a configuration error: exit 2, the secret not shown."""
    with Emulator(sites=2) as emu:
        seed(db.engine, emu.instance_ids)
        _use(monkeypatch, emu, db.url)
        monkeypatch.setenv("WIX_APP_SECRET", "not-the-secret")
        assert main(["sync"]) == 2
    captured = capsys.readouterr()
    assert (
        "refused the app credentials" in captured.err and "not-the-secret" not in captured.err + captured.out
    )


def test_a_403_for_one_instance_exits_1_and_the_others_sync(db) -> None:
    """The issue's first case: Get App Instance 403 for one instance (its token issued fine) is that
    tenant's failure: exit 1, listed with Wix's request id in the JSON and on its row; the
    others synced in the same run; no "stopping the sync"."""
    with Emulator(sites=7, seed=21) as emu:
        seed(db.engine, emu.instance_ids)
        bad = emu.instance_ids[3]
        emu.set_instance_status(bad, 403)
        proc = start_sync(emu, db.url, "--all", "--json")
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    report = json.loads(out)
    assert (report["synced"], report["failed"], report["stopped_early"]) == (6, 1, None)
    (failure,) = report["failures"]
    assert failure["instance_id"] == bad and failure["status"] == 403 and failure["request_id"]
    row = rows(db.engine)[uuid.UUID(bad)]
    assert "PERMISSION_DENIED" in row["last_sync_error"] and failure["request_id"] in row["last_sync_error"]
    assert f"instance {bad} not synced" in err and failure["request_id"] in err
    assert "stopping" not in err


@pytest.mark.slow
def test_wix_down_exits_1_with_one_line_naming_the_base_url(db) -> None:
    """The issue's second case: Wix unreachable. Exit 1, one ERROR line naming the base URL and what
    failed, no retry lines, 3 tenants charged a failure and the other 4 untouched."""
    with Emulator(sites=7, seed=22) as emu:
        seed(db.engine, emu.instance_ids)
        emu.set_outage("drop")
        proc = start_sync(emu, db.url, "--json")
        out, err = proc.communicate(timeout=120)
        base_url = emu.base_url
    assert proc.returncode == 1, err
    report = json.loads(out)
    assert report["failed"] == 3 and report["synced"] == 0
    assert f"Wix unavailable at {base_url}" in report["stopped_early"]
    outage_lines = [line for line in err.splitlines() if f"Wix unavailable at {base_url}" in line]
    assert len(outage_lines) == 1 and "connection failed" in outage_lines[0]
    assert "retry" not in err.lower()
    assert len([line for line in err.splitlines() if "not synced" in line]) == 3
    charged = [row for row in rows(db.engine).values() if row["last_attempt_at"] is not None]
    assert len(charged) == 3 and all(row["consecutive_failures"] == 1 for row in charged)


def test_sqlite_in_one_process(tmp_path: Path, monkeypatch, capsys) -> None:
    """On a SQLite file (migrated with Alembic) the sync runs in one process and fills every row."""
    url = f"sqlite:///{tmp_path / 'tenancy.db'}"
    engine = create_engine(url)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TenancyWarning)
        migrate(engine)
    with Emulator(sites=4, seed=9) as emu:
        seed(engine, emu.instance_ids)
        emu.update_site(
            emu.instance_ids[0],
            is_free=False,
            billing_cycle="YEARLY",
            expiration_date="2027-01-15T10:21:33.123Z",
        )
        _use(monkeypatch, emu, url)
        assert main(["sync", "--concurrency", "4", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["changed"] == 4
        assert main(["sync", "--all", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["unchanged"] == 4  # naive SQLite datetimes compare equal
        emu.remove_app(emu.instance_ids[1])
        for _ in range(2):
            assert main(["sync", "--all", "--remove-after", "2", "--json"]) in (0, 1)
            capsys.readouterr()
    table = rows(engine)
    assert all(consistent(row) for row in table.values())
    assert table[uuid.UUID(emu.instance_ids[1])]["status"] == "removed"
    engine.dispose()


@pytest.mark.slow
def test_three_processes_fetch_each_tenant_exactly_once(db) -> None:
    """Three `tenancy sync` processes at once on 36 tenants: each instance is fetched exactly once."""
    # 0.1 s per answer: one process alone would need ~3.6 s, far longer than the others take
    # to start, so the three really compete for the same rows.
    with Emulator(sites=36, seed=12, latency=0.1) as emu:
        seed(db.engine, emu.instance_ids)
        procs = [start_sync(emu, db.url, "--concurrency", "2", "--json") for _ in range(3)]
        outputs = [proc.communicate(timeout=120) for proc in procs]
        assert [proc.returncode for proc in procs] == [0, 0, 0], outputs
        reports = [json.loads(out) for out, _ in outputs]
        assert sum(r["synced"] for r in reports) == 36
        assert sum(1 for r in reports if r["synced"] > 0) >= 2  # the work really was shared
        assert {emu.count("get_app_instance", iid) for iid in emu.instance_ids} == {1}
    assert all(consistent(row) and row["raw"] is not None for row in rows(db.engine).values())


@pytest.mark.slow
def test_a_killed_sync_loses_nothing_and_the_next_run_takes_over_at_once(db) -> None:
    """SIGKILL midway leaves rows untouched or fully written; a run started right after syncs the rest."""
    with Emulator(sites=40, seed=13, latency=0.05) as emu:
        seed(db.engine, emu.instance_ids)
        proc = start_sync(emu, db.url, "--concurrency", "4")
        deadline = time.monotonic() + 60
        while _synced(db.engine) < 8 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
        done_before = _synced(db.engine)
        assert 8 <= done_before < 40
        assert all(consistent(row) for row in rows(db.engine).values())
        again = start_sync(emu, db.url, "--concurrency", "4", "--json")
        out, err = again.communicate(timeout=120)
        assert again.returncode == 0, err
        assert json.loads(out)["synced"] == 40 - done_before
        counts = [emu.count("get_app_instance", iid) for iid in emu.instance_ids]
        # Only the few in flight at the kill (at most one per worker) were fetched twice.
        assert min(counts) == 1 and sum(c - 1 for c in counts) <= 4
    table = rows(db.engine)
    assert len(table) == 40 and all(consistent(row) and row["raw"] is not None for row in table.values())


@pytest.mark.slow
def test_sigterm_finishes_in_flight_prints_the_summary_and_releases_claims(db) -> None:
    """SIGTERM: in-flight tenants are committed, the summary printed, exit 130; the next run does the rest."""
    with Emulator(sites=30, seed=14, latency=0.05) as emu:
        seed(db.engine, emu.instance_ids)
        proc = start_sync(emu, db.url, "--concurrency", "2", "--json")
        deadline = time.monotonic() + 60
        while _synced(db.engine) < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, err
        report = json.loads(out)
        assert report["interrupted"] and report["synced"] == _synced(db.engine) < 30
        assert all(consistent(row) for row in rows(db.engine).values())
        rest = start_sync(emu, db.url, "--json")
        out, _ = rest.communicate(timeout=120)
        assert json.loads(out)["synced"] == 30 - report["synced"]
        assert {emu.count("get_app_instance", iid) for iid in emu.instance_ids} == {1}


@pytest.mark.slow
def test_processes_split_one_run_and_sigterm_stops_them_all(db) -> None:
    """--processes 2: one JSON report for both processes; SIGTERM to the command stops every
    process after its tenants in flight (exit 130), and the next run does the rest, each
    tenant fetched exactly once over the two runs."""
    with Emulator(sites=40, seed=15, latency=0.05) as emu:
        seed(db.engine, emu.instance_ids)
        proc = start_sync(emu, db.url, "--all", "--processes", "2", "--concurrency", "4", "--json")
        deadline = time.monotonic() + 60
        while _synced(db.engine) < 6 and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        first = json.loads(out)
        assert first["interrupted"] and first["synced"] == _synced(db.engine) < 40
        rest = start_sync(emu, db.url, "--processes", "2", "--concurrency", "4", "--json")
        out, err = rest.communicate(timeout=120)
        assert rest.returncode == 0, err
        assert json.loads(out)["synced"] == 40 - first["synced"]
        assert {emu.count("get_app_instance", iid) for iid in emu.instance_ids} == {1}
    assert all(consistent(row) and row["raw"] is not None for row in rows(db.engine).values())


@pytest.mark.slow
def test_every_keeps_running_until_sigterm(db) -> None:
    """--every runs repeatedly in one process (one JSON line per run) and stops cleanly on SIGTERM."""
    with Emulator(sites=3, seed=15) as emu:
        seed(db.engine, emu.instance_ids)
        proc = start_sync(emu, db.url, "--every", "100ms", "--stale-after", "0s", "--json")
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode in (0, 130), err
    reports = [json.loads(line) for line in lines + out.splitlines() if line.strip()]
    assert len(reports) >= 3 and reports[0]["changed"] == 3
    assert all(r["synced"] == 3 for r in reports[:3])


def test_an_unmigrated_or_unreachable_database_exits_2(empty_pg_database, monkeypatch, capsys) -> None:
    """No tenants table, or no database server: exit 2 with a hint, not a traceback."""
    with Emulator(sites=1) as emu:
        _use(monkeypatch, emu, empty_pg_database.admin_url)
        assert main(["sync"]) == 2
        assert "alembic upgrade head" in capsys.readouterr().err
        _use(monkeypatch, emu, "postgresql+psycopg://nobody@127.0.0.1:1/none")
        assert main(["sync"]) == 2
        assert (
            "cannot reach the database postgresql+psycopg://nobody@127.0.0.1:1/none"
            in capsys.readouterr().err
        )


@pytest.mark.slow
def test_plain_log_lines_without_a_terminal_and_no_secrets_even_verbose(db) -> None:
    """Piped stderr gets progress log lines (no bar); -v output holds neither the app secret nor tokens."""
    with Emulator(sites=20, seed=16) as emu:
        seed(db.engine, emu.instance_ids)
        emu.set_faults(rate=0.3, kinds=("500", "429"), seed=1)
        emu.respond_with(
            "get_app_instance",
            status=403,
            body={"message": f"denied {emu.app_secret}", "details": {}},
            instance_id=emu.instance_ids[0],
        )
        proc = start_sync(emu, db.url, "--concurrency", "2")
        out, err = proc.communicate(timeout=120)
        verbose = subprocess.run(
            [sys.executable, "-m", "tenancy", "-v", "sync", "--all"],
            env=env_for(emu, db.url),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert "tenant(s) to do" in err and "/20 done" in err and "\r" not in err
    everything = out + err + verbose.stdout + verbose.stderr
    assert emu.app_secret not in everything
    assert "OauthNG" not in everything


@pytest.mark.slow
def test_a_progress_bar_on_a_terminal(db) -> None:
    """With stderr on a terminal the run draws a tqdm bar there; stdout keeps only the report."""
    with Emulator(sites=10, seed=17) as emu:
        seed(db.engine, emu.instance_ids)
        leader, follower = pty.openpty()
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 100 columns
        proc = subprocess.Popen(
            [sys.executable, "-m", "tenancy", "sync", "--json"],
            env=env_for(emu, db.url),
            stdout=subprocess.PIPE,
            stderr=follower,
            text=True,
        )
        os.close(follower)
        out, _ = proc.communicate(timeout=120)
        screen = b""
        with contextlib.suppress(OSError):  # EIO once the terminal's other end is closed
            while chunk := os.read(leader, 65536):
                screen += chunk
        os.close(leader)
    assert proc.returncode == 0
    assert json.loads(out)["synced"] == 10
    assert b"10/10" in screen and b"tenant" in screen
