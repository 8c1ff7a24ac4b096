"""The sealed binding on Citus: the key and the check on every node, the seal verified on the
shards, and a seal read from another backend's query text worth nothing."""

from __future__ import annotations

import time
import uuid

import psycopg
import pytest
from sqlalchemy import create_engine, text

from tenancy import CrossTenantAccess, TenantSessionFactory
from tenancy.commands.main import main
from tenancy.postgres.citus_binding import WINDOW_SECONDS, WINDOW_SLACK, binding_commands, seal
from tests.citus.conftest import A, B, CitusDb, binding_key
from tests.wire import RoundTripProxy

pytestmark = pytest.mark.usefixtures("sessions")


def _runtime(db: CitusDb) -> psycopg.Connection:
    return psycopg.connect(db.cluster.coordinator.url(db.cluster.runtime))


def _bind(conn: psycopg.Connection, tenant: uuid.UUID, tenant_seal: str) -> None:
    for command in binding_commands(tenant, tenant_seal):
        conn.execute(command.decode())


def _notes(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM notes").fetchone()  # fans out: RLS on every shard
    assert row is not None
    return int(row[0])


def test_the_check_and_the_key_are_on_every_node_and_the_key_is_the_owners(citus_db: CitusDb) -> None:
    for node in citus_db.cluster.nodes:
        with psycopg.connect(node.url()) as conn:
            assert conn.execute("SELECT to_regprocedure('tenancy.current_instance_id()')").fetchone() != (
                None,
            )
            shards = conn.execute(
                "SELECT count(*) FROM pg_class WHERE relname LIKE 'binding\\_keys\\_%'"
            ).fetchone()
            assert shards == (1,), node
    with _runtime(citus_db) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("SELECT * FROM tenancy.binding_keys")


def test_a_seal_for_this_backend_verifies_on_the_shards(citus_db: CitusDb) -> None:
    with _runtime(citus_db) as conn:
        gpid = conn.execute("SELECT citus_backend_gpid()").fetchone()[0]  # type: ignore[index]
        conn.rollback()
        _bind(conn, A, seal(binding_key(citus_db), A, gpid))
        assert _notes(conn) == 2


def test_a_forged_or_stale_binding_sees_nothing(citus_db: CitusDb) -> None:
    key = binding_key(citus_db)
    with _runtime(citus_db) as conn:
        gpid = conn.execute("SELECT citus_backend_gpid()").fetchone()[0]  # type: ignore[index]
        conn.rollback()
        conn.execute(f"SET LOCAL tenancy.instance_id = '{B}'")  # no seal
        assert _notes(conn) == 0
        conn.rollback()
        _bind(conn, B, seal(key, A, gpid))  # A's seal does not carry B
        assert _notes(conn) == 0
        conn.rollback()
        _bind(conn, A, seal(key, A, gpid)[:-4] + "0000")  # a wrong HMAC
        assert _notes(conn) == 0
        conn.rollback()
        stale = time.time() - (WINDOW_SLACK + 1) * WINDOW_SECONDS
        _bind(conn, A, seal(key, A, gpid, now=stale))
        assert _notes(conn) == 0


def test_a_seal_stolen_from_another_backend_does_not_verify_here(citus_db: CitusDb) -> None:
    """A Citus seal is bound to the backend that sent it: one that leaked anyway (a log, a
    superuser's view of another backend's query text) binds nothing on another backend."""
    key = binding_key(citus_db)
    with _runtime(citus_db) as victim, _runtime(citus_db) as attacker:
        gpid = victim.execute("SELECT citus_backend_gpid()").fetchone()[0]  # type: ignore[index]
        victim.rollback()
        stolen = seal(key, B, gpid)
        for command in binding_commands(B, stolen)[:2]:
            victim.execute(command.decode())
        _bind(attacker, B, stolen)
        assert _notes(attacker) == 0
        assert _notes(victim) == 2


def test_sessions_pick_the_citus_form_and_rls_holds_for_raw_sql(
    citus_db: CitusDb, sessions: TenantSessionFactory
) -> None:
    with sessions.for_instance(A) as session:
        seal_text = session.execute(text("SELECT current_setting('tenancy.seal')")).scalar_one()
        assert seal_text.count(".") == 2  # <key id>.<window>.<hmac>
        session.execute(text(f"SET LOCAL tenancy.instance_id = '{B}'"))  # injected SQL
        assert session.execute(text("SELECT count(*) FROM notes")).scalar_one() == 0


def test_rotate_key_on_citus(citus_db: CitusDb, monkeypatch: pytest.MonkeyPatch) -> None:
    """The key table is a reference table: a new key verifies on every shard, a retired one nowhere."""
    url = citus_db.admin.url.render_as_string(hide_password=False)
    monkeypatch.setenv("TENANCY_ADMIN_DATABASE_URL", url)
    monkeypatch.setenv("DATABASE_URL", url)
    old = binding_key(citus_db)
    try:
        assert main(["rotate-key", "--start"]) == 0
        new = binding_key(citus_db)
        assert new.key_id != old.key_id
        assert main(["rotate-key", "--finish"]) == 0
        with _runtime(citus_db) as conn:
            gpid = conn.execute("SELECT citus_backend_gpid()").fetchone()[0]  # type: ignore[index]
            conn.rollback()
            _bind(conn, A, seal(new, A, gpid))
            assert _notes(conn) == 2
            conn.rollback()
            _bind(conn, A, seal(old, A, gpid))
            assert _notes(conn) == 0
    finally:
        with citus_db.admin.begin() as conn:  # the session's other fixtures hold the old key
            conn.execute(text("UPDATE tenancy.binding_keys SET retired_at = NULL"))


def test_a_prepared_statement_made_by_sql_discards_the_connection(citus_db: CitusDb) -> None:
    """Scenario 60 on Citus: the connection check rides in the same pipeline as the SET LOCALs."""
    engine = create_engine(citus_db.cluster.runtime_url, pool_size=1, max_overflow=0)
    sessions = TenantSessionFactory(engine, binding_key=binding_key(citus_db))
    try:
        with sessions.for_instance(A) as session:
            session.execute(text("PREPARE _pg3_0 AS DELETE FROM notes"))
            session.commit()
        with (
            pytest.raises(CrossTenantAccess, match="prepared statements"),
            sessions.for_instance(B) as session,
        ):
            session.execute(text("SELECT count(*) FROM notes")).scalar_one()
        with sessions.for_instance(B) as session:  # a new, clean connection
            assert session.execute(text("SELECT count(*) FROM notes")).scalar_one() == 2
    finally:
        engine.dispose()


def test_a_tenant_transaction_costs_no_extra_round_trip_on_citus(citus_db: CitusDb) -> None:
    """BEGIN + the two SET LOCAL + the connection check go in one pipeline: BEGIN..., SELECT,
    COMMIT = 3 round trips, like an unscoped transaction."""
    port = citus_db.cluster.coordinator.port
    with RoundTripProxy("127.0.0.1", port) as proxy:
        url = citus_db.cluster.runtime_url.replace(f":{port}/", f":{proxy.port}/")
        engine = create_engine(url, pool_size=1, max_overflow=0)
        sessions = TenantSessionFactory(engine, binding_key=binding_key(citus_db))
        try:

            def tenant() -> None:
                with sessions.for_instance(A) as session:
                    assert session.execute(text("SELECT count(*) FROM notes")).scalar_one() == 2
                    session.commit()

            def plain() -> None:
                with engine.begin() as conn:
                    conn.execute(text("SELECT 1")).scalar_one()

            counts: dict[str, list[int]] = {}
            for work in (tenant, plain):
                work()  # connection, Citus detection and gpid lookup happen once, here
                counts[work.__name__] = []
                for _ in range(4):  # the 6th run of a query costs psycopg's server-side prepare
                    proxy.reset()
                    work()
                    counts[work.__name__].append(proxy.round_trips)
            assert counts == {"tenant": [3] * 4, "plain": [3] * 4}
        finally:
            engine.dispose()


def test_a_seal_in_set_local_text_is_never_readable_by_another_tenants_sql(citus_db: CitusDb) -> None:
    """On Citus the seal travels in SET LOCAL text, and a pooled backend serves every tenant: a
    seal SQL in A's session could read would be replayable on A's next checkout of B's backend.
    With the runtime role's query text unreported (track_activities off for the role, which
    tenancy check requires on Citus), A's SQL sees no seal on the coordinator or the workers."""
    key = binding_key(citus_db)
    with _runtime(citus_db) as pooled, _runtime(citus_db) as attacker:
        gpid = pooled.execute("SELECT citus_backend_gpid()").fetchone()[0]  # type: ignore[index]
        pooled.rollback()
        pooled.execute("SELECT count(*) FROM notes")  # B's transaction, mid-flight, on the shards
        for command in binding_commands(B, seal(key, B, gpid))[:2]:
            pooled.execute(command.decode())
        # The SET is B's backend's last statement now: what another backend of the role can read.
        seen = attacker.execute(
            "SELECT coalesce(query, '') FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
            " UNION ALL SELECT coalesce(query, '') FROM citus_stat_activity"
            " WHERE global_pid <> citus_backend_gpid()"
        ).fetchall()
        assert seen, "the attacker saw no other backend at all: the probe proves nothing"
        assert not [q for (q,) in seen if "tenancy.seal" in q or str(B) in q]
        assert _notes(pooled) > 0  # and B was bound all along
