"""``tenancy check`` on Citus: every shard placement audited on its worker, and the setting
that makes ``SET LOCAL`` reach the shards."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import text

from tenancy.postgres.audit import Finding, audit
from tenancy.postgres.roles import grant_runtime_role
from tests.citus.cluster import Node
from tests.citus.conftest import CitusDb


def _audit(db: CitusDb) -> list[Finding]:
    with db.admin.connect() as conn:
        return audit(conn, runtime_role=db.cluster.runtime)


@pytest.fixture
def one_shard(citus_db: CitusDb) -> Iterator[tuple[Node, str]]:
    """A shard of ``notes`` and the worker holding it; its RLS is restored afterwards."""
    with citus_db.admin.connect() as conn:
        shard, port = conn.execute(
            text(
                "SELECT shard_name('notes'::regclass, s.shardid), n.nodeport FROM pg_dist_shard s"
                " JOIN pg_dist_placement p USING (shardid) JOIN pg_dist_node n USING (groupid)"
                " WHERE s.logicalrelid = 'notes'::regclass ORDER BY s.shardid DESC LIMIT 1"
            )
        ).one()
    worker = next(w for w in citus_db.cluster.workers if w.port == port)
    yield worker, shard
    with psycopg.connect(worker.url(), autocommit=True) as conn:
        conn.execute(f"ALTER TABLE {shard} ENABLE ROW LEVEL SECURITY")
        conn.execute(f"ALTER TABLE {shard} FORCE ROW LEVEL SECURITY")


def test_a_migrated_and_granted_cluster_is_clean(citus_db: CitusDb) -> None:
    assert _audit(citus_db) == []


def test_rls_switched_off_on_one_worker_shard_is_found(
    citus_db: CitusDb, one_shard: tuple[Node, str]
) -> None:
    worker, shard = one_shard
    with psycopg.connect(worker.url(), autocommit=True) as conn:
        conn.execute(f"ALTER TABLE {shard} NO FORCE ROW LEVEL SECURITY")
        conn.execute(f"ALTER TABLE {shard} DISABLE ROW LEVEL SECURITY")
    findings = _audit(citus_db)
    shard_id = shard.rsplit("_", 1)[1]
    assert {(f.kind, f.message) for f in findings} == {
        ("rls", "row-level security is not enabled on this shard"),
        ("rls", "row-level security is not forced on this shard"),
    }
    assert all(f.subject == f"public.notes shard {shard_id} on 127.0.0.1:{worker.port}" for f in findings)


def test_a_missing_propagation_setting_is_found_and_grant_restores_it(citus_db: CitusDb) -> None:
    with psycopg.connect(citus_db.cluster.superuser_url, autocommit=True) as conn:
        conn.execute("ALTER DATABASE tenancy RESET citus.propagate_set_commands")
        conn.execute(f"ALTER ROLE {citus_db.cluster.runtime} RESET citus.propagate_set_commands")
    findings = _audit(citus_db)
    assert [(f.kind, f.subject) for f in findings] == [("citus", citus_db.cluster.runtime)]
    assert "citus.propagate_set_commands is 'none', not 'local'" in findings[0].message
    with citus_db.admin.begin() as conn:
        grant_runtime_role(conn, citus_db.cluster.runtime)
    assert _audit(citus_db) == []


def test_query_text_the_runtime_role_can_read_is_found(citus_db: CitusDb) -> None:
    """On Citus the seal is in SET LOCAL text: the check insists that other backends of the
    runtime role cannot read it (track_activities off for the role)."""
    runtime = citus_db.cluster.runtime
    with psycopg.connect(citus_db.cluster.superuser_url, autocommit=True) as conn:
        conn.execute(f"ALTER ROLE {runtime} RESET track_activities")
    try:
        findings = _audit(citus_db)
        assert [(f.kind, f.subject) for f in findings] == [("citus", runtime)]
        assert findings[0].message.startswith("track_activities is on for the runtime role")
    finally:
        with psycopg.connect(citus_db.cluster.superuser_url, autocommit=True) as conn:
            conn.execute(f"ALTER ROLE {runtime} SET track_activities = off")
    assert _audit(citus_db) == []
