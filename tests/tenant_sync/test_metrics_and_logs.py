"""`tenancy sync --metrics-file` (Prometheus text for node_exporter) and per-tenant log lines."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine

import tenancy
from tenancy.commands.main import main
from tenancy.emulator import Emulator
from tenancy.tenant_sync.job import SyncOptions, sync
from tenancy.testing.postgres import fresh_database
from tests.conftest import migrate
from tests.sync_helpers import SyncDb, env_for, seed
from tests.wix_helpers import client_for

pytestmark = pytest.mark.postgres


@pytest.fixture
def db(pg_server: str) -> Iterator[SyncDb]:
    with fresh_database() as database:
        engine = create_engine(database.admin_url, pool_size=4)
        migrate(engine)
        yield SyncDb(database.admin_url, engine)
        engine.dispose()


def _samples(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(path.read_text())
        for sample in family.samples
    }


def test_metrics_file_counts_outcomes_duration_backlog_and_oldest_sync(
    db: SyncDb, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a run in which one app was removed, the file holds counts, duration, due and oldest sync."""
    path = tmp_path / "tenancy_sync.prom"
    with Emulator(sites=4, seed=3) as emu:
        seed(db.engine, emu.instance_ids)
        emu.remove_app(emu.instance_ids[0])
        for name, value in env_for(emu, db.url).items():
            if name.startswith(("WIX_", "TENANCY_", "DATABASE_URL")):
                monkeypatch.setenv(name, value)
        code = main(["sync", "--all", "--metrics-file", str(path), "--remove-after", "1"])
    assert code == 0
    metrics = _samples(path)
    outcome = {key[1][0][1]: value for key, value in metrics.items() if key[0] == "tenancy_sync_tenants"}
    assert outcome == {"changed": 3, "unchanged": 0, "removed": 1, "failed": 0}
    assert metrics[("tenancy_sync_duration_seconds", ())] > 0
    assert metrics[("tenancy_sync_interrupted", ())] == 0
    # The removed tenant waits for its recheck; the synced ones are fresh.
    assert metrics[("tenancy_sync_tenants_due", ())] == 0
    oldest = metrics[("tenancy_sync_oldest_last_synced_timestamp_seconds", ())]
    assert oldest <= metrics[("tenancy_sync_last_run_timestamp_seconds", ())]
    assert metrics[("tenancy_tenants", (("status", "active"),))] == 3
    assert metrics[("tenancy_tenants", (("status", "removed"),))] == 1
    # Written atomically: only the final file is left in the directory.
    assert [p.name for p in tmp_path.iterdir()] == ["tenancy_sync.prom"]


def test_metrics_without_prometheus_client_is_a_usage_error(tmp_path: Path) -> None:
    """Exit 2 before syncing, naming the extra to install."""
    code = textwrap.dedent(
        f"""
        import sys
        sys.modules["prometheus_client"] = None
        from tenancy.commands.main import main
        sys.exit(main(["sync", "--metrics-file", {str(tmp_path / "m.prom")!r}]))
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "pip install 'wix-tenancy[metrics]'" in done.stderr
    assert not list(tmp_path.iterdir())


def test_the_syncs_per_tenant_lines_carry_the_instance_id(
    db: SyncDb, caplog: pytest.LogCaptureFixture
) -> None:
    """The warning about a tenant that failed carries that tenant's instance_id."""
    tenancy.log_instance_ids()
    with Emulator(sites=3, seed=5) as emu, client_for(emu) as client:
        seed(db.engine, emu.instance_ids)
        bad = emu.instance_ids[1]
        emu.set_faults(rate=1.0, kinds=("503",), instance_id=bad)
        with caplog.at_level(logging.WARNING, logger="tenancy.sync"):
            report = sync(db.engine, client, SyncOptions(mode="all", concurrency=2))
    assert report.failed == 1
    lines = [r for r in caplog.records if r.name == "tenancy.sync" and "not synced" in r.getMessage()]
    assert [r.instance_id for r in lines] == [bad]  # type: ignore[attr-defined]


def test_a_tenant_session_sets_the_instance_id_of_its_log_records(runtime_engine, admin_engine) -> None:
    """Inside `with session:` records carry its tenant; nested sessions restore the outer one; '-' outside."""
    seen: list[str] = []

    class Grab(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.instance_id)  # type: ignore[attr-defined]

    logger = logging.getLogger("tests.log_context")
    handler = Grab()
    handler.addFilter(tenancy.InstanceIdFilter())
    logger.addHandler(handler)
    logger.propagate = False
    sessions = tenancy.TenantSessionFactory(runtime_engine, admin_engine=admin_engine)
    a, b = uuid.uuid4(), uuid.uuid4()
    try:
        logger.warning("before")
        with sessions.for_instance(a):
            logger.warning("in a")
            with sessions.for_instance(b):
                logger.warning("in b")
            logger.warning("back in a")
        logger.warning("after")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    assert seen == ["-", str(a), str(b), str(a), "-"]
