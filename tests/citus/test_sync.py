"""``tenancy sync`` on Citus with ``tenants`` distributed: three processes share the work.

Each process lists due tenants without a lock (a multi-shard read) and locks one by key
(a single-shard ``FOR UPDATE SKIP LOCKED``); Citus refuses the multi-shard ``FOR UPDATE``
a claim over the ordered listing would be.
"""

from __future__ import annotations

import json

from sqlalchemy import text

from tenancy.emulator import Emulator
from tests.citus.conftest import CitusDb
from tests.sync_helpers import consistent, rows, seed, start_sync


def test_three_processes_fetch_each_tenant_exactly_once(citus_db: CitusDb) -> None:
    url = citus_db.admin.url.render_as_string(hide_password=False)
    # 0.1 s per answer: one process alone would need ~2.4 s, longer than the others take to start.
    with Emulator(sites=24, seed=21, latency=0.1) as emu:
        with citus_db.admin.begin() as conn:  # the session's other tenants are not due
            conn.execute(text("UPDATE tenants SET last_synced_at = now()"))
        seed(citus_db.admin, emu.instance_ids)
        # Due mode: a tenant one process synced is fresh for the others, whenever they start
        # (--all or --instance would sync again what was done before a later process started).
        procs = [start_sync(emu, url, "--concurrency", "2", "--json") for _ in range(3)]
        outputs = [proc.communicate(timeout=120) for proc in procs]
        assert [proc.returncode for proc in procs] == [0, 0, 0], outputs
        reports = [json.loads(out) for out, _ in outputs]
        assert sum(r["synced"] for r in reports) == 24, reports
        assert sum(1 for r in reports if r["synced"] > 0) >= 2  # the work really was shared
        assert {emu.count("get_app_instance", iid) for iid in emu.instance_ids} == {1}
    synced = {iid: row for iid, row in rows(citus_db.admin).items() if str(iid) in emu.instance_ids}
    assert len(synced) == 24 and all(consistent(row) and row["raw"] is not None for row in synced.values())
    with citus_db.admin.connect() as conn:  # the rows live on the workers' shards
        placed = conn.execute(
            text("SELECT sum(result::int) FROM run_command_on_shards('tenants', 'SELECT count(*) FROM %s')")
        ).scalar_one()
    assert placed == len(rows(citus_db.admin))
