"""Scenarios 59-68: raw SQL inside tenant A's own session (SQL injection) stays inside A.

Each connection-level scenario runs four ways (the ``tenants`` fixture): a pool of ONE
connection, sync and async, directly and through a real PgBouncer in transaction mode with
one server connection. The attacker is A, with arbitrary SQL in A's session; the victim is
B's next request on the very same server connection.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from tenancy import ConfigurationError, CrossTenantAccess, CrossTenantWrite, TenantSessionFactory
from tenancy.postgres.audit import audit
from tenancy.postgres.binding import BIND_SQL, CHECK_FUNCTION
from tenancy.postgres.roles import grant_runtime_role
from tenancy.testing.postgres import Database
from tests.isolation.models import Note
from tests.isolation.raw_sql import Runner, scalar
from tests.isolation.support import COUNTS, A, B, Env

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]
NOTE_IDS = "SELECT instance_id FROM iso_notes"


def _sqlstate(exc: BaseException) -> str | None:
    orig = exc.orig if isinstance(exc, DBAPIError) else exc.__cause__
    return getattr(orig, "sqlstate", None)


def _instances(session: Session) -> set[uuid.UUID]:
    return {row[0] for row in session.execute(text(NOTE_IDS))}


def _notes_of(pg: Env, tenant: uuid.UUID) -> int:
    return int(pg.owner_scalar("SELECT count(*) FROM iso_notes WHERE instance_id = :t", t=tenant))


def test_s59_a_temporary_table_cannot_shadow_a_tenant_table(pg: Env, tenants: Runner) -> None:
    """Scenario 59: A cannot create a temp table (no TEMP): B's next writes and reads hit the real table."""
    for sql in (
        "CREATE TEMP TABLE iso_notes (instance_id uuid, id int, folder_id int, title text, body text)",
        "CREATE TABLE pg_temp.iso_notes (instance_id uuid, id int)",
    ):
        with pytest.raises(DBAPIError) as err:
            tenants.run(A, lambda s, sql=sql: s.execute(text(sql)))
        assert _sqlstate(err.value) == "42501"  # permission denied to create temporary tables
    assert tenants.run(A, scalar(text("SELECT has_database_privilege(current_database(), 'TEMP')"))) is False
    tenants.run(B, lambda s: s.add(Note(id=59, folder_id=1, title="b59")))
    assert pg.owner_scalar("SELECT title FROM iso_notes WHERE instance_id = :b AND id = 59", b=B) == "b59"
    titles = tenants.run(B, lambda s: {n.title for n in s.scalars(select(Note)).unique()})
    assert "b59" in titles and len(titles) == COUNTS[B]["notes"] + 1  # B's four titles and b59


def test_s60_a_re_prepared_statement_never_runs_for_the_next_tenant(pg: Env, tenants: Runner) -> None:
    """Scenario 60: A re-PREPAREs psycopg's statement names with a DELETE; B's next request refuses the
    connection (discarded, never used), and B's later requests run on a clean one."""

    def b_reads(session: Session) -> list[tuple[uuid.UUID, int]]:
        return sorted(
            (n.instance_id, n.id) for n in session.scalars(select(Note).where(Note.id > 0)).unique()
        )

    expected = tenants.run(B, b_reads)
    for _ in range(6):  # psycopg prepares the query server-side after 5 runs (directly)
        assert tenants.run(B, b_reads) == expected

    def attack(session: Session) -> None:
        for name in session.execute(text("SELECT name FROM pg_prepared_statements")).scalars().all():
            session.execute(text(f"DEALLOCATE {name}"))
        for i in range(30):
            session.execute(text(f"PREPARE _pg3_{i} AS DELETE FROM iso_notes RETURNING instance_id, id"))

    tenants.run(A, attack)
    with pytest.raises(CrossTenantAccess, match="prepared statements"):
        tenants.run(B, b_reads)  # the tainted connection is closed before anything runs on it
    for _ in range(7):
        assert tenants.run(B, b_reads) == expected
    assert _notes_of(pg, B) == COUNTS[B]["notes"] and _notes_of(pg, A) == COUNTS[A]["notes"]


@pytest.mark.parametrize("seal", ["none", "copied", "garbage"])
def test_s61_a_session_level_setting_binds_nothing_later(pg: Env, tenants: Runner, seal: str) -> None:
    """Scenario 61: A's committed session-level `SET tenancy.*` reads none of B's rows on any later
    checkout: tenant session or plain runtime connection."""

    def attack(session: Session) -> None:
        session.execute(text(f"SET SESSION tenancy.instance_id = '{B}'"))
        if seal == "copied":  # A's own valid seal, kept beyond the transaction
            session.execute(text("SELECT set_config('tenancy.seal', current_setting('tenancy.seal'), false)"))
        elif seal == "garbage":
            session.execute(text("SET SESSION tenancy.seal = '1.00'"))
        session.execute(text("SET SESSION tenancy.anything_else = 'x'"))

    try:
        tenants.run(A, attack)
        plain = tenants.plain(lambda c: {r[0] for r in c.execute(text(NOTE_IDS))})
        assert B not in plain and plain <= {A}
        assert tenants.run(A, _instances) == {A}
        assert tenants.run(B, _instances) == {B}  # B's own session is B's, not disturbed
        assert tenants.plain(lambda c: {r[0] for r in c.execute(text(NOTE_IDS))}) <= {A}
    finally:
        tenants.plain(lambda c: c.execute(text("RESET ALL")))


def test_s62_set_config_to_another_tenant_inside_a_session_reads_and_writes_nothing(
    pg: Env, tenants: Runner
) -> None:
    """Scenario 62: `set_config('tenancy.instance_id', B, true)` in A's session: no rows, writes refused."""

    def attack(session: Session) -> set[uuid.UUID]:
        session.execute(text("SELECT set_config('tenancy.instance_id', :b, true)"), {"b": str(B)})
        return _instances(session)

    assert tenants.run(A, attack) == set()
    with pytest.raises(CrossTenantWrite):

        def write(session: Session) -> None:
            session.execute(text("SELECT set_config('tenancy.instance_id', :b, true)"), {"b": str(B)})
            session.execute(
                text("INSERT INTO iso_notes (instance_id, id, folder_id, title) VALUES (:b, 62, 1, 'x')"),
                {"b": B},
            )

        tenants.run(A, write)
    assert pg.owner_scalar("SELECT count(*) FROM iso_notes WHERE id = 62") == 0
    assert tenants.run(A, _instances) == {A}


@pytest.fixture
def observer(iso_database: Database) -> Iterator[Engine]:
    """Another backend of the runtime role, straight to PostgreSQL, reading pg_stat_activity."""
    engine = create_engine(iso_database.runtime_url, poolclass=NullPool)
    yield engine
    engine.dispose()


ACTIVITY = text("SELECT query FROM pg_stat_activity WHERE usename = current_user AND pid <> pg_backend_pid()")


def test_s63_query_text_never_shows_an_instance_id_or_seal(pg: Env, tenants: Runner, observer) -> None:
    """Scenario 63: other backends of the role never read a tenant id or seal in query text."""
    secrets = {str(B), pg.seal(B).split(".", 1)[1], str(A), pg.seal(A).split(".", 1)[1]}
    seen: set[str] = set()
    stop, watching = threading.Event(), threading.Event()

    def watch() -> None:
        with observer.connect() as conn:
            watching.set()
            while not stop.is_set():
                seen.update(q for q in conn.execute(ACTIVITY).scalars() if q)
                conn.rollback()

    thread = threading.Thread(target=watch)
    thread.start()
    try:
        # On a loaded machine the observer may connect, or first sample, only after a few tenant
        # transactions: wait for it, then run at least 30 and until it has seen some query text.
        assert watching.wait(30), "the observer did not connect"
        runs = 0
        while runs < 30 or (not seen and runs < 1000):
            tenants.run((A, B)[runs % 2], lambda s: s.scalars(select(Note)).unique().all())
            runs += 1
    finally:
        stop.set()
        thread.join()
    assert seen, "the observer saw no query at all"
    assert not [q for q in seen if any(secret in q for secret in secrets)]
    assert "$1" in BIND_SQL and "$2" in BIND_SQL and CHECK_FUNCTION in BIND_SQL


def test_s63_the_binding_statement_shows_only_placeholders(pg: Env, iso_database: Database, observer) -> None:
    """Scenario 63: where the binding is a statement of its own (no fast path), its text has $1, $2 only."""
    import psycopg

    class UserConnection(psycopg.Connection):  # type: ignore[type-arg]
        """Not adopted by tenancy: the binding goes as a separate statement."""

    url = iso_database.runtime_url.replace("postgresql+psycopg://", "postgresql://", 1)
    engine = create_engine(
        "postgresql+psycopg://", creator=lambda: UserConnection.connect(url), poolclass=NullPool
    )
    try:
        with TenantSessionFactory(engine, binding_key=pg.key).for_instance(B) as session:
            pid = session.connection().connection.driver_connection.info.backend_pid
            with observer.connect() as conn:
                last = conn.execute(
                    text("SELECT query FROM pg_stat_activity WHERE pid = :p"), {"p": pid}
                ).scalar()
            assert last is not None and CHECK_FUNCTION in last and "$2" in last
            assert str(B) not in last and pg.seal(B).split(".", 1)[1] not in last
            assert _instances(session) == {B}
    finally:
        engine.dispose()


@pytest.fixture
def a_removed_free_tenant(pg: Env) -> Iterator[None]:
    """A's tenants row: removed, on the free plan."""
    pg.owner_execute(
        "INSERT INTO tenants (instance_id, status, is_free, billing_package_name, first_seen_at)"
        " VALUES (:a, 'removed', true, NULL, now()) ON CONFLICT (instance_id) DO UPDATE"
        " SET status = 'removed', is_free = true, billing_package_name = NULL, last_synced_at = NULL",
        a=A,
    )
    yield
    pg.owner_execute("DELETE FROM tenants WHERE instance_id = :a", a=A)


@pytest.mark.usefixtures("a_removed_free_tenant")
def test_s64_a_tenant_cannot_edit_its_own_tenants_row(pg: Env, tenants: Runner) -> None:
    """Scenario 64: A cannot reactivate itself, upgrade its plan or move its sync dates."""
    for sql in (
        "UPDATE tenants SET status = 'active'",
        "UPDATE tenants SET is_free = false, billing_package_name = 'premium'",
        "UPDATE tenants SET last_synced_at = now() + interval '10 years', next_attempt_at = NULL",
        "INSERT INTO tenants (instance_id, status, first_seen_at) VALUES (:a, 'active', now())"
        " ON CONFLICT (instance_id) DO UPDATE SET status = 'active'",
        "DELETE FROM tenants",
        # registration needs a proof computed with the key; A's own seal is not one
        "SELECT tenancy.register_tenant('site', current_setting('tenancy.seal'))",
        "SELECT tenancy.register_tenant('site', '1.' || repeat('0', 64))",
    ):
        with pytest.raises(DBAPIError) as err:
            tenants.run(A, lambda s, sql=sql: s.execute(text(sql), {"a": A}))
        assert _sqlstate(err.value) == "42501", sql
    row = pg.owner_scalar(
        "SELECT row(status, is_free, billing_package_name, last_synced_at)::text FROM tenants"
        " WHERE instance_id = :a",
        a=A,
    )
    assert row == "(removed,t,,)"
    # A reads its own row, and only it.
    assert tenants.run(A, lambda s: list(s.execute(text("SELECT instance_id FROM tenants")).scalars())) == [A]


def test_s65_role_level_settings_are_reported_and_bind_nothing(
    pg: Env, tenants: Runner, iso_database: Database
) -> None:
    """Scenario 65: `ALTER ROLE CURRENT_USER SET ...` from A: new connections still read none of B's
    rows, and `tenancy check` reports the setting."""
    fresh = create_engine(iso_database.runtime_url, poolclass=NullPool)
    accepted = []
    try:
        for name, sql in (
            ("row_security", "ALTER ROLE CURRENT_USER SET row_security = off"),
            ("tenancy.instance_id", f"ALTER ROLE CURRENT_USER SET tenancy.instance_id = '{B}'"),
        ):
            try:
                tenants.run(A, lambda s, sql=sql: s.execute(text(sql)))
            except DBAPIError as exc:  # refused is fine too (PostgreSQL 15 refuses tenancy.*)
                assert _sqlstate(exc) == "42501"
            except ConfigurationError as exc:  # the planted setting before it refuses the transaction
                assert "role-level settings" in str(exc)
            else:
                accepted.append(name)
        with fresh.connect() as conn:
            try:
                seen = {r[0] for r in conn.execute(text(NOTE_IDS))}
            except DBAPIError as exc:  # row_security = off: an error, never all rows
                assert _sqlstate(exc) == "42501"
            else:
                assert B not in seen
        with pg.owner.connect() as conn:
            found = [str(f) for f in audit(conn, runtime_role=pg.runtime_role)]
        assert accepted, "nothing to report: the attack was refused outright"
        for name in accepted:
            assert any(f"role-level setting {name} " in f for f in found), found
    finally:
        with fresh.begin() as conn:
            # Only what the attack set: RESET ALL would also drop the role's timeouts (tenancy grant).
            for name in accepted:  # (PostgreSQL 15 refuses RESET of a tenancy.* it refused to SET)
                conn.execute(text(f'ALTER ROLE CURRENT_USER RESET "{name}"'))
        fresh.dispose()
    with pg.owner.connect() as conn:
        assert not [f for f in audit(conn, runtime_role=pg.runtime_role) if "role-level" in str(f)]


OWNER_OBJECTS = [
    ("CREATE MATERIALIZED VIEW iso_all_notes AS SELECT instance_id, title FROM iso_notes", "iso_all_notes"),
    ("GRANT SELECT ON iso_all_notes TO {runtime}", None),
    (
        "CREATE FUNCTION iso_every_title() RETURNS SETOF text LANGUAGE sql SECURITY DEFINER"
        " AS $$ SELECT title FROM iso_notes $$",
        "iso_every_title()",
    ),
    ("CREATE TABLE iso_open (id int PRIMARY KEY, secret text)", "iso_open"),
    ("GRANT SELECT ON iso_open TO {runtime}", None),
    ("CREATE UNIQUE INDEX iso_notes_title_uq ON iso_notes (title, instance_id)", "iso_notes_title_uq"),
    ("CREATE INDEX iso_notes_body_ix ON iso_notes (body)", "iso_notes_body_ix"),
    (
        "ALTER TABLE iso_tags ADD CONSTRAINT iso_tags_label_ex"
        " EXCLUDE USING btree (id WITH =, label WITH =, instance_id WITH =)",
        "iso_tags_label_ex",
    ),
]
DROP_OWNER_OBJECTS = [
    "DROP MATERIALIZED VIEW IF EXISTS iso_all_notes",
    "DROP FUNCTION IF EXISTS iso_every_title()",
    "DROP TABLE IF EXISTS iso_open",
    "DROP INDEX IF EXISTS iso_notes_title_uq",
    "DROP INDEX IF EXISTS iso_notes_body_ix",
    "ALTER TABLE iso_tags DROP CONSTRAINT IF EXISTS iso_tags_label_ex",
]


def test_s66_owner_objects_that_reach_around_rls_are_reported(
    pg: Env, tenants: Runner, iso_database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scenario 66: a materialized view, a SECURITY DEFINER function, a table without RLS, an index or
    exclusion constraint not led by instance_id: each is a finding of `tenancy check` (exit 1)."""
    from tenancy.commands.main import main

    try:
        for sql, _ in OWNER_OBJECTS:
            pg.owner_execute(sql.format(runtime=f'"{pg.runtime_role}"'))
        # Why they matter: through the view and the function, A reads B's titles.
        assert tenants.run(A, scalar(text("SELECT count(DISTINCT instance_id) FROM iso_all_notes"))) == 2
        assert "Extra" in tenants.run(A, lambda s: set(s.execute(text("SELECT iso_every_title()")).scalars()))
        with pg.owner.connect() as conn:
            found = [str(f) for f in audit(conn, runtime_role=pg.runtime_role)]
        for _, subject in OWNER_OBJECTS:
            if subject is not None:
                assert any(subject in f for f in found), (subject, found)
        monkeypatch.setenv("TENANCY_ADMIN_DATABASE_URL", iso_database.admin_url)
        monkeypatch.setenv("DATABASE_URL", iso_database.runtime_url)
        assert main(["check"]) == 1
    finally:
        for sql in DROP_OWNER_OBJECTS:
            pg.owner_execute(sql)


def test_s67_grant_gives_tenant_tables_only_and_no_sequence_privilege(
    pg: Env, tenants: Runner, iso_database: Database
) -> None:
    """Scenario 67: `tenancy grant` grants tenant tables (not every table), no sequence privilege, no TEMP;
    identity inserts still work."""
    try:
        with pg.owner.begin() as conn:
            conn.execute(text("CREATE TABLE iso_internal (id int PRIMARY KEY, note text)"))
            conn.execute(
                text(
                    "CREATE TABLE iso_counted (instance_id uuid NOT NULL,"
                    " id int GENERATED BY DEFAULT AS IDENTITY, label text, PRIMARY KEY (instance_id, id))"
                )
            )
            from tenancy import enable_isolation

            enable_isolation(conn, "iso_counted")
            grant_runtime_role(conn, pg.runtime_role, also=["iso_note_titles"])
        privileges = tenants.plain(
            lambda c: c.execute(
                text(
                    "SELECT has_table_privilege('iso_internal', 'SELECT'),"
                    " has_table_privilege('iso_notes', 'SELECT,INSERT,UPDATE,DELETE'),"
                    " has_table_privilege('tenants', 'SELECT'), has_table_privilege('tenants', 'UPDATE'),"
                    " has_database_privilege(current_database(), 'TEMP'),"
                    " (SELECT count(*) FROM pg_class s WHERE s.relkind = 'S'"
                    "  AND (has_sequence_privilege(s.oid, 'USAGE') OR has_sequence_privilege(s.oid, 'SELECT')"
                    "       OR has_sequence_privilege(s.oid, 'UPDATE')))"
                )
            ).one()
        )
        assert tuple(privileges) == (False, True, True, False, False, 0)
        inserted = tenants.run(
            A,
            lambda s: s.execute(
                text("INSERT INTO iso_counted (instance_id, label) VALUES (:a, 'x') RETURNING id"), {"a": A}
            ).scalar(),
        )
        assert isinstance(inserted, int)
    finally:
        pg.owner_execute("DROP TABLE IF EXISTS iso_internal")
        pg.owner_execute("DROP TABLE IF EXISTS iso_counted")


def test_s68_postgresql_inherent_channels_are_documented(pg: Env, tenants: Runner) -> None:
    """Scenario 68: what no policy closes is in the README's limits, each with its mitigation; the
    statistics values themselves stay hidden (pg_stats filters tables under RLS)."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Threat model") :]
    section = section[: section.index("\n## ", 4)].lower()
    for channel in (
        "planner estimates",
        "reltuples",
        "identity sequence",
        "large objects",
        "notify",
        "table locks",
        "pg_terminate_backend",
    ):
        assert channel in section, channel
    assert "mitigation" in section
    pg.owner_execute("ANALYZE iso_notes")
    assert tenants.run(A, scalar(text("SELECT count(*) FROM pg_stats WHERE tablename = 'iso_notes'"))) == 0
    # The documented limit, as it is: the table's total row count is visible to every tenant.
    total = COUNTS[A]["notes"] + COUNTS[B]["notes"]
    assert (
        tenants.run(A, scalar(text("SELECT reltuples::int FROM pg_class WHERE relname = 'iso_notes'")))
        == total
    )
