"""The tenant lifecycle on Citus: purge, erasure, export and a duplicated site's copy on
distributed tenant tables co-located with ``tenants``.

The lifecycle test schema (:mod:`tests.lifecycle.schema`: composite tenant keys, Identity,
bigserial and UUID keys, two self-references) in a schema of its own, ``life``, every table
distributed by ``instance_id`` (parents first). The tenants are picked so that the origin and
its copy sit on different workers: the copy crosses shards. The schema is dropped at the end,
so the other Citus tests see only their own tables.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, create_engine, text

import tenancy
from tenancy.lifecycle import copy_from_origin, discover, export_tenant, purge
from tenancy.postgres.citus import distribute_tenant_table
from tenancy.postgres.isolation import enable_isolation
from tenancy.tenant_sync.events import apply_event
from tenancy.wix.webhooks import WixEvent
from tests.citus.conftest import CitusDb
from tests.lifecycle.schema import DDL, TABLES, counts, fingerprint, populate

SCHEMA = "life"
# Citus refuses nextval() of an int sequence on the workers: bigint keys (as its docs advise).
CITUS_DDL = DDL.replace("id serial", "id bigserial").replace("reply_to int", "reply_to bigint")
NOW = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)


def _worker(conn: Connection, iid: uuid.UUID) -> tuple[int, int]:
    """(shard id, worker port) of the tenant's ``tenants`` shard (its tables are co-located)."""
    shard, port = conn.execute(
        text(
            "SELECT s.shardid, n.nodeport FROM pg_dist_placement p JOIN pg_dist_node n USING (groupid)"
            " JOIN (SELECT get_shard_id_for_distribution_column('tenants', CAST(:i AS uuid)) shardid) s"
            " USING (shardid)"
        ),
        {"i": iid},
    ).one()
    return int(shard), int(port)


class Tenants:
    """Instance ids: ``origin`` and ``other`` on one worker, ``copy`` on the other."""

    def __init__(self, admin: Engine) -> None:
        with admin.connect() as conn:
            candidates = [uuid.UUID(int=0x11FE0000 + n) for n in range(64)]
            where = {iid: _worker(conn, iid) for iid in candidates}
        self.origin = candidates[0]
        shard, port = where[self.origin]
        self.other = next(i for i in candidates if where[i][1] == port and where[i][0] != shard)
        self.copy = next(i for i in candidates if where[i][1] != port)
        self.where = where
        self.all = [self.origin, self.other, self.copy]


@pytest.fixture(scope="module")
def life(citus_db: CitusDb) -> Iterator[Engine]:
    """The lifecycle schema in ``life``, distributed; an engine whose search_path finds it first."""
    with citus_db.admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {SCHEMA}"))
        conn.execute(text(f"GRANT USAGE ON SCHEMA {SCHEMA} TO {citus_db.cluster.runtime}"))
    with citus_db.admin.begin() as conn:
        conn.execute(text(f"SET LOCAL search_path = {SCHEMA}, public"))
        for statement in CITUS_DDL.split(";"):
            if statement.strip():
                conn.execute(text(statement))
        for table in TABLES:
            enable_isolation(conn, f"{SCHEMA}.{table}")
    with citus_db.admin.begin() as conn:
        for table in TABLES:  # parents first: TABLES is in that order
            assert distribute_tenant_table(conn, f"{SCHEMA}.{table}")
    engine = create_engine(
        citus_db.cluster.admin_url, connect_args={"options": f"-c search_path={SCHEMA},public"}
    )
    yield engine
    engine.dispose()
    with citus_db.admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {SCHEMA} CASCADE"))


@pytest.fixture
def ids(life: Engine) -> Iterator[Tenants]:
    """The tenants, their rows (origin and other) removed before and after each test."""
    tenants = Tenants(life)

    def clean() -> None:
        with life.begin() as conn:
            for table in reversed(TABLES):
                conn.execute(text(f"DELETE FROM {table} WHERE instance_id = ANY(:t)"), {"t": tenants.all})
            conn.execute(text("DELETE FROM tenants WHERE instance_id = ANY(:t)"), {"t": tenants.all})

    clean()
    with life.begin() as conn:
        populate(conn, tenants.origin)
        populate(conn, tenants.other, folders=2)
    yield tenants
    clean()


def _event(kind: str, iid: uuid.UUID, **payload: object) -> WixEvent:
    return WixEvent(event_type=kind, instance_id=iid, payload={"appId": "app", **payload})


def test_tenant_tables_are_found_on_the_coordinator_and_not_their_shards(
    citus_db: CitusDb, life: Engine
) -> None:
    with citus_db.admin.connect() as conn:
        found = discover(conn, schema=SCHEMA)
    assert [t.name for t in found] == ["folders", "tags", "notes", "audit_log", "comments", "note_tags"]
    assert {c.name for t in found for c in t.generated} == {"id"}
    assert {t.name for t in found if t.generated} == {"folders", "notes", "audit_log", "comments"}


def test_purge_past_retention_on_the_shards_leaves_the_other_tenant_to_the_byte(
    citus_db: CitusDb, life: Engine, ids: Tenants
) -> None:
    admin = citus_db.admin
    apply_event(admin, _event("AppRemoved", ids.origin), now=NOW - dt.timedelta(days=40))
    apply_event(admin, _event("AppRemoved", ids.other), now=NOW - dt.timedelta(days=10))
    with life.connect() as conn:
        before, other = counts(conn, ids.origin), fingerprint(conn, ids.other)

    dry = purge(admin, dry_run=True, schema=SCHEMA, now=NOW)
    assert [(t.instance_id, t.outcome, t.counts) for t in dry.tenants] == [
        (ids.origin, "would purge", before)
    ]
    with life.connect() as conn:
        assert counts(conn, ids.origin) == before

    report = purge(admin, schema=SCHEMA, now=NOW, batch_size=7)  # several batches per table

    [done] = report.tenants
    assert (done.instance_id, done.outcome, done.counts) == (ids.origin, "purged", before)
    with life.connect() as conn:
        assert set(counts(conn, ids.origin).values()) == {0}
        assert fingerprint(conn, ids.other) == other
        tomb = conn.execute(
            text("SELECT purged_at, site_url, purge_counts FROM tenants WHERE instance_id = :i"),
            {"i": ids.origin},
        ).one()
    assert tomb.purged_at == NOW and tomb.site_url is None and tomb.purge_counts == before
    assert purge(admin, schema=SCHEMA, now=NOW).tenants == []  # idempotent


def test_erasure_now_of_an_active_tenant_on_the_shards(citus_db: CitusDb, life: Engine, ids: Tenants) -> None:
    with life.connect() as conn:
        before, origin = counts(conn, ids.other), fingerprint(conn, ids.origin)

    report = purge(citus_db.admin, instances=[ids.other], immediately=True, schema=SCHEMA, batch_size=5)

    assert [(t.outcome, t.counts) for t in report.tenants] == [("purged", before)]
    with life.connect() as conn:
        assert set(counts(conn, ids.other).values()) == {0}
        assert fingerprint(conn, ids.origin) == origin


def test_export_reads_the_tenant_from_its_shard(
    citus_db: CitusDb, life: Engine, ids: Tenants, tmp_path: Path
) -> None:
    manifest = export_tenant(citus_db.admin, ids.origin, tmp_path, schema=SCHEMA)

    with life.connect() as conn:
        expected = counts(conn, ids.origin)
    assert {name: t["rows"] for name, t in manifest.tables.items()} == expected
    for table in TABLES:
        rows = [json.loads(line) for line in (tmp_path / f"{table}.jsonl").read_text().splitlines()]
        assert len(rows) == expected[table] and {r["instance_id"] for r in rows} == {str(ids.origin)}
    assert json.loads((tmp_path / "manifest.json").read_text())["instance_id"] == str(ids.origin)


def _graph(engine: Engine, iid: uuid.UUID) -> list[tuple[object, ...]]:
    """The tenant's data with generated keys replaced by what they identify."""
    with engine.connect() as conn:
        return [
            tuple(row)
            for row in conn.execute(
                text(
                    "SELECT f.name, p.name, n.body, n.amount, n.blob, n.meta::text, c.body, r.body,"
                    "  (SELECT string_agg(t.label, ',' ORDER BY t.label) FROM note_tags nt"
                    "   JOIN tags t ON t.instance_id = nt.instance_id AND t.id = nt.tag_id"
                    "   WHERE nt.instance_id = n.instance_id AND nt.note_id = n.id)"
                    " FROM notes n JOIN folders f ON f.instance_id = n.instance_id AND f.id = n.folder_id"
                    " LEFT JOIN folders p ON p.instance_id = f.instance_id AND p.id = f.parent_id"
                    " JOIN comments c ON c.instance_id = n.instance_id AND c.note_id = n.id"
                    " JOIN comments r ON r.instance_id = c.instance_id AND r.id = c.reply_to"
                    " WHERE n.instance_id = :i ORDER BY 1, 2, 3, 7"
                ),
                {"i": iid},
            )
        ]


def test_a_duplicated_site_is_copied_across_shards_once_and_stays_isolated(
    citus_db: CitusDb, life: Engine, ids: Tenants
) -> None:
    admin = citus_db.admin
    assert ids.where[ids.origin][1] != ids.where[ids.copy][1]  # the copy crosses workers
    with life.connect() as conn:
        before_origin, before_other = fingerprint(conn, ids.origin), fingerprint(conn, ids.other)
    apply_event(admin, _event("AppInstalled", ids.copy, originInstanceId=str(ids.origin)), now=NOW)

    result = copy_from_origin(admin, ids.copy, schema=SCHEMA)

    assert (result.outcome, result.error) == ("copied", None), result.error
    with life.connect() as conn:
        assert counts(conn, ids.copy) == counts(conn, ids.origin) == result.counts
        assert fingerprint(conn, ids.origin) == before_origin
        assert fingerprint(conn, ids.other) == before_other
        for table in ("folders", "notes", "comments", "audit_log"):  # new generated keys
            # (a join between two tenants' shards would need repartitioning: compare in Python)
            keys = text(f"SELECT id FROM {table} WHERE instance_id = :i")
            origin_keys = set(conn.execute(keys, {"i": ids.origin}).scalars())
            assert origin_keys and not origin_keys & set(conn.execute(keys, {"i": ids.copy}).scalars()), table
        after_first = fingerprint(conn, ids.copy)
    assert _graph(life, ids.copy) == _graph(life, ids.origin) != []

    assert copy_from_origin(admin, ids.copy, schema=SCHEMA).outcome == "already copied"
    with life.connect() as conn:
        assert fingerprint(conn, ids.copy) == after_first

    sessions = tenancy.TenantSessionFactory(citus_db.runtime, admin_engine=admin)
    with sessions.for_instance(ids.copy) as session:  # raw SQL fans out: RLS on every shard
        seen = session.execute(text(f"SELECT DISTINCT instance_id FROM {SCHEMA}.notes")).scalars().all()
        n = session.execute(text(f"SELECT count(*) FROM {SCHEMA}.comments")).scalar()
    assert seen == [ids.copy] and n == after_first["comments"][0]


def test_a_batch_whose_rows_stay_locked_on_a_worker_fails_and_a_rerun_finishes(
    citus_db: CitusDb, life: Engine, ids: Tenants
) -> None:
    """The batch's lock_timeout reaches the worker that holds the lock (without it the purge
    would wait there for as long as the lock is held)."""
    # A guard for this test only: a purge waiting on the worker is cancelled after 10 s.
    # Propagation off for the owner's sessions, as where `tenancy grant` set it for the runtime
    # role only: the purge turns it on for its batches itself.
    guarded = create_engine(
        citus_db.cluster.admin_url,
        connect_args={"options": "-c statement_timeout=10000 -c citus.propagate_set_commands=none"},
    )
    try:
        with life.connect() as holder:
            holder.execute(
                text("SELECT id FROM notes WHERE instance_id = :i FOR UPDATE"), {"i": ids.other}
            ).all()
            first = purge(
                guarded,
                instances=[ids.other],
                immediately=True,
                schema=SCHEMA,
                lock_timeout=dt.timedelta(milliseconds=100),
            )
            holder.rollback()
        [failed] = first.tenants
        assert failed.outcome == "failed" and "could not take the locks" in (failed.error or "")
        with life.connect() as conn:
            assert counts(conn, ids.other)["notes"] > 0

        second = purge(guarded, instances=[ids.other], immediately=True, schema=SCHEMA)
    finally:
        guarded.dispose()
    assert [t.outcome for t in second.tenants] == ["purged"]
    with life.connect() as conn:
        assert set(counts(conn, ids.other).values()) == {0}
