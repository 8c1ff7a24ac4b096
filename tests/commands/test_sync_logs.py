"""`tenancy sync` says each thing once: one line per progress step, one final line, one
line for refused app credentials."""

from __future__ import annotations

import datetime as dt
import logging
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tenancy.commands.sync import _progress
from tenancy.emulator import Emulator
from tenancy.tenant_sync.report import SyncReport
from tests.sync_helpers import SyncDb, env_for, migrated_database, seed


def _report(changed: int) -> SyncReport:
    return SyncReport(started_at=dt.datetime.now(dt.UTC), changed=changed)


def _progress_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [m for m in caplog.messages if m.startswith("sync: ") and " done (" in m]


def test_workers_finishing_together_log_the_final_line_once(caplog: pytest.LogCaptureFixture) -> None:
    """Four workers finish the last four tenants at once; each then reads the shared report
    (3/3 for all four): one "3/3 done" line, not four."""
    caplog.set_level(logging.INFO, logger="tenancy.sync")
    with _progress() as (on_start, on_progress):
        on_start(3)
        finished = _report(3)
        for _ in range(4):
            on_progress(finished)
    assert _progress_lines(caplog) == ["sync: 3/3 done (3 changed, 0 unchanged, 0 removed, 0 failed)"]


def test_progress_lines_every_step_and_at_the_end_once_each(caplog: pytest.LogCaptureFixture) -> None:
    """45 tenants (a line every 2): counts seen out of order or twice still give each step once,
    and the final count gets its own line."""
    caplog.set_level(logging.INFO, logger="tenancy.sync")
    seen = [1, 2, 2, 4, 3, 5, 6, 6, *range(7, 46), 45, 45]
    with _progress() as (on_start, on_progress):
        on_start(45)
        for count in seen:
            on_progress(_report(count))
    done = [int(line.split()[1].split("/")[0]) for line in _progress_lines(caplog)]
    assert done == [2, 4, 6, *range(8, 45, 2), 45]


@pytest.fixture
def db(pg_server: str) -> Iterator[SyncDb]:
    with migrated_database(pool_size=6) as database:
        yield database


@pytest.mark.postgres
def test_a_run_logs_its_final_line_once_and_refused_credentials_once(db: SyncDb) -> None:
    """The command as a process, four workers: "12/12 done" once on stderr; with a wrong app
    secret, one line about the refused credentials (the tenancy error), not two."""
    with Emulator(sites=12, seed=21) as emu:
        seed(db.engine, emu.instance_ids)
        argv = [sys.executable, "-m", "tenancy", "sync", "--all", "--concurrency", "4"]
        ran = subprocess.run(argv, env=env_for(emu, db.url), capture_output=True, text=True, timeout=120)
        assert ran.returncode == 0, ran.stderr
        assert sum("sync: 12/12 done" in line for line in ran.stderr.splitlines()) == 1
        env = {**env_for(emu, db.url), "WIX_APP_SECRET": "not-the-secret"}
        refused = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2
    lines = [line for line in refused.stderr.splitlines() if "refused the app" in line]
    assert len(lines) == 1 and lines[0].startswith("tenancy: Wix refused the app credentials"), refused.stderr
    assert "not-the-secret" not in refused.stderr + refused.stdout
