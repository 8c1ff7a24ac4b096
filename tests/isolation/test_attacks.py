"""Attacks from raw SQL in tenant A's session beyond scenarios 59-68 (review of the sealed binding).

The attacker runs arbitrary SQL in A's session; the victim is B's next request on the very
same connection (a pool of one).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from tenancy import AsyncTenantSessionFactory, TenantSessionFactory
from tenancy.postgres.audit import audit
from tenancy.postgres.binding import registration_proof
from tenancy.postgres.psycopg_begin import arm_commands, install
from tenancy.postgres.roles import grant_runtime_role
from tenancy.tenants.registration import upsert_seen_tenant
from tenancy.testing.postgres import Database, sqlalchemy_url
from tests.isolation.models import Note
from tests.isolation.raw_sql import Runner, via_port
from tests.isolation.support import COUNTS, A, B, Env

pytestmark = pytest.mark.postgres


class UserConnection(psycopg.Connection):  # type: ignore[type-arg]
    """The user's own psycopg class: tenancy leaves it alone, the binding is a statement."""


class AsyncUserConnection(psycopg.AsyncConnection):  # type: ignore[type-arg]
    """The async counterpart of :class:`UserConnection`."""


Run = Callable[[uuid.UUID, Callable[[Session], Any]], Any]


@pytest.fixture(params=["sync", "async"])
def user_class_tenants(request: pytest.FixtureRequest, pg: Env, iso_database: Database) -> Iterator[Run]:
    """Tenant sessions on a pool of ONE connection of the user's own class (not adopted)."""
    url = iso_database.runtime_url.replace("postgresql+psycopg://", "postgresql://", 1)
    pool: dict[str, Any] = {"pool_size": 1, "max_overflow": 0}
    if request.param == "sync":
        engine = create_engine("postgresql+psycopg://", creator=lambda: UserConnection.connect(url), **pool)
        factory = TenantSessionFactory(engine, binding_key=pg.key)

        def run(tenant: uuid.UUID, fn: Callable[[Session], Any]) -> Any:
            with factory.for_instance(tenant) as session:
                result = fn(session)
                session.commit()
                return result

        yield run
        engine.dispose()
        return
    loop = asyncio.new_event_loop()
    async_engine = create_async_engine(
        "postgresql+psycopg://", async_creator=lambda: AsyncUserConnection.connect(url), **pool
    )
    async_factory = AsyncTenantSessionFactory(async_engine, binding_key=pg.key)

    def run_async(tenant: uuid.UUID, fn: Callable[[Session], Any]) -> Any:
        async def go() -> Any:
            async with async_factory.for_instance(tenant) as session:
                result = await session.run_sync(fn)
                await session.commit()
                return result

        return loop.run_until_complete(go())

    yield run_async
    loop.run_until_complete(async_engine.dispose())
    loop.close()


def _b_reads(session: Session) -> int:
    return len(session.scalars(select(Note)).unique().all())


def test_the_binding_statement_is_never_a_prepared_statement_sql_can_replace(
    pg: Env, user_class_tenants: Run
) -> None:
    """Where the binding is a statement of its own, psycopg must never prepare it: A could
    DEALLOCATE and re-PREPARE its name with SQL that binds B as usual, reports the connection
    clean and stores B's seal where A reads it (a large object); A would then bind as B."""
    run = user_class_tenants
    for _ in range(7):  # psycopg prepares a query server-side after 5 runs
        assert run(B, _b_reads) == COUNTS[B]["notes"]

    def attack(session: Session) -> list[str]:
        return [
            name
            for name, statement in session.execute(text("SELECT name, statement FROM pg_prepared_statements"))
            if "tenancy.seal" in statement
        ]

    assert run(A, attack) == []  # nothing named to take over
    # And a name taken over anyway (every name psycopg may give next) is refused, not run.

    def take_over(session: Session) -> None:
        for name in session.execute(text("SELECT name FROM pg_prepared_statements")).scalars().all():
            session.execute(text(f"DEALLOCATE {name}"))
        for i in range(30):
            session.execute(
                text(
                    f"PREPARE _pg3_{i}(text, text) AS SELECT set_config('tenancy.instance_id', $1, true),"
                    " set_config('tenancy.seal', $2, true),"
                    " lo_from_bytea(0, convert_to($1 || ' ' || $2, 'UTF8')) IS NOT NULL AS clean"
                )
            )

    objects = "SELECT count(*) FROM pg_largeobject_metadata"
    before = run(A, lambda s: s.execute(text(objects)).scalar())
    run(A, take_over)
    with pytest.raises(Exception, match="prepared statements"):
        run(B, _b_reads)
    assert run(B, _b_reads) == COUNTS[B]["notes"]
    assert run(A, lambda s: s.execute(text(objects)).scalar()) == before  # no seal was stored


def test_hiding_the_runtime_roles_query_text_hides_a_running_binding_and_is_no_finding(
    pg: Env, iso_database: Database
) -> None:
    """The README's mitigation for seals in query text (Citus): `track_activities = off` for the
    runtime role hides what its backends run from its other backends (SQL injected into another
    tenant's session), the role cannot turn it back on, and `tenancy check` stays clean."""
    superuser = create_engine(sqlalchemy_url(iso_database.superuser_url), poolclass=NullPool)
    runtime = create_engine(iso_database.runtime_url, poolclass=NullPool)
    role = f'"{pg.runtime_role}"'
    try:
        with superuser.begin() as conn:
            conn.execute(text(f"ALTER ROLE {role} SET track_activities = off"))
        with runtime.connect() as victim, runtime.connect() as attacker:
            victim.execute(text("SET LOCAL tenancy.seal = 'a-secret-in-query-text'"))
            pid = victim.connection.driver_connection.info.backend_pid
            seen = attacker.execute(
                text("SELECT state, query FROM pg_stat_activity WHERE pid = :p"), {"p": pid}
            )
            assert seen.one() == ("disabled", "")  # connections opened after the ALTER ROLE
            with pytest.raises(Exception, match="permission denied"):
                attacker.execute(text("SET track_activities = on"))
        with pg.owner.connect() as conn:
            assert not [f for f in audit(conn, runtime_role=pg.runtime_role) if "role-level" in str(f)]
    finally:
        with superuser.begin() as conn:
            conn.execute(text(f"ALTER ROLE {role} RESET track_activities"))
        superuser.dispose()
        runtime.dispose()


PLANT = [
    "CREATE TABLE public.iso_loot (v text)",
    "CREATE FUNCTION public.iso_vc_eq(varchar, varchar) RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN"
    " INSERT INTO public.iso_loot VALUES (current_setting('tenancy.instance_id', true) || ' '"
    " || current_setting('tenancy.seal', true)); RETURN $1::text = $2::text; END $$",
    "CREATE OPERATOR public.= (LEFTARG = varchar, RIGHTARG = varchar, FUNCTION = public.iso_vc_eq)",
]
UNPLANT = [
    "DROP OPERATOR IF EXISTS public.= (varchar, varchar)",
    "DROP FUNCTION IF EXISTS public.iso_vc_eq(varchar, varchar)",
    "DROP TABLE IF EXISTS public.iso_loot",
    "DROP FUNCTION IF EXISTS public.iso_probe()",
]


def test_grant_takes_create_on_the_schema_where_sql_could_plant_an_operator_for_the_next_tenant(
    pg: Env, iso_database: Database
) -> None:
    """Where PUBLIC may create in `public` (databases made before PostgreSQL 15), A plants `=` for
    varchar; B's ORM query by title runs it inside B's transaction, and it hands A B's seal.
    `tenancy check` reports the planted objects; `tenancy grant` takes CREATE away."""
    superuser = create_engine(sqlalchemy_url(iso_database.superuser_url), poolclass=NullPool)
    # New connections: a statement psycopg prepared before the operator existed keeps the built-in.
    runtime = create_engine(iso_database.runtime_url, poolclass=NullPool)
    sessions = TenantSessionFactory(runtime, binding_key=pg.key)
    try:
        with superuser.begin() as conn:
            conn.execute(text("GRANT CREATE ON SCHEMA public TO PUBLIC"))
        with sessions.for_instance(A) as session:
            for sql in PLANT:
                session.execute(text(sql))
            session.commit()
        with sessions.for_instance(B) as session:
            assert [n.title for n in session.scalars(select(Note).where(Note.title == "Extra")).unique()] == [
                "Extra"
            ]
            session.commit()  # B's request ends as requests do
        with sessions.for_instance(A) as session:
            loot = session.execute(text("SELECT v FROM public.iso_loot")).scalars().all()
        assert f"{B} {pg.seal(B)}" in loot  # why it matters: A could now bind as B
        with pg.owner.connect() as conn:
            found = [str(f) for f in audit(conn, runtime_role=pg.runtime_role)]
        for planted in ("function iso_vc_eq(", "operator =(character varying,character varying)"):
            assert any(f"owns {planted}" in f for f in found), (planted, found)
        with superuser.begin() as conn:  # what the findings say: drop them
            for sql in UNPLANT:
                conn.execute(text(sql))
        with pg.owner.begin() as conn:
            grant_runtime_role(conn, pg.runtime_role, also=["iso_note_titles"])
        with pytest.raises(DBAPIError) as err, sessions.for_instance(A) as session:
            session.execute(text("CREATE FUNCTION public.iso_probe() RETURNS int LANGUAGE sql AS 'SELECT 1'"))
        assert getattr(err.value.orig, "sqlstate", None) == "42501"
        with pg.owner.connect() as conn:
            assert not [f for f in audit(conn, runtime_role=pg.runtime_role) if "CREATE on schema" in str(f)]
    finally:
        with superuser.begin() as conn:
            for sql in UNPLANT:
                conn.execute(text(sql))
            conn.execute(text("REVOKE CREATE ON SCHEMA public FROM PUBLIC"))
        superuser.dispose()
        runtime.dispose()


def test_grant_takes_create_on_the_database_so_sql_cannot_add_a_schema_to_the_search_path(
    pg: Env, iso_database: Database
) -> None:
    """With CREATE on the database, A could create a schema named like the runtime role: the
    default search_path ("$user", public) puts it before `public` for every later checkout, a
    place to plant operators as above. `tenancy check` reports it; `tenancy grant` takes it."""
    superuser = create_engine(sqlalchemy_url(iso_database.superuser_url), poolclass=NullPool)
    database, schema = f'"{iso_database.name}"', f'"{pg.runtime_role}"'
    try:
        with superuser.begin() as conn:
            conn.execute(text(f"GRANT CREATE ON DATABASE {database} TO PUBLIC"))
        with pg.factory.for_instance(A) as session:
            session.execute(text(f"CREATE SCHEMA {schema}"))
            assert session.execute(text("SELECT (current_schemas(false))[1]")).scalar() == pg.runtime_role
            session.rollback()
        with pg.owner.connect() as conn:
            found = [str(f) for f in audit(conn, runtime_role=pg.runtime_role)]
        assert any("has CREATE on the database" in f for f in found), found
        with pg.owner.begin() as conn:
            grant_runtime_role(conn, pg.runtime_role, also=["iso_note_titles"])
        with pytest.raises(DBAPIError) as err, pg.factory.for_instance(A) as session:
            session.execute(text(f"CREATE SCHEMA {schema}"))
        assert getattr(err.value.orig, "sqlstate", None) == "42501"
    finally:
        with superuser.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
            conn.execute(text(f"REVOKE CREATE ON DATABASE {database} FROM PUBLIC"))
        superuser.dispose()


def test_a_security_definer_function_in_the_tenancy_schema_is_reported_too(pg: Env) -> None:
    """Only tenancy's own two functions are exempt from the SECURITY DEFINER finding, not
    everything an owner puts in the `tenancy` schema."""
    try:
        pg.owner_execute(
            "CREATE FUNCTION tenancy.iso_every_title() RETURNS SETOF text LANGUAGE sql SECURITY DEFINER"
            " SET search_path = public AS $$ SELECT title FROM iso_notes $$"
        )
        pg.owner_execute(f'GRANT EXECUTE ON FUNCTION tenancy.iso_every_title() TO "{pg.runtime_role}"')
        with pg.owner.connect() as conn:
            found = [str(f) for f in audit(conn, runtime_role=pg.runtime_role)]
        assert any("tenancy.iso_every_title()" in f for f in found), found
        assert not [f for f in found if "current_instance_id" in f or "register_tenant" in f]
    finally:
        pg.owner_execute("DROP FUNCTION IF EXISTS tenancy.iso_every_title()")


def test_what_row_level_security_does_not_filter_is_not_granted(pg: Env) -> None:
    """TRUNCATE ignores RLS (it would empty every tenant's rows), a trigger made by the runtime role
    would run on other tenants' writes, REFERENCES would let a foreign key probe their keys: none
    is granted on any tenant table."""
    with pg.factory.for_instance(A) as session:
        granted = session.execute(
            text(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND ("
                " has_table_privilege(c.oid, 'TRUNCATE') OR has_table_privilege(c.oid, 'TRIGGER')"
                " OR has_table_privilege(c.oid, 'REFERENCES'))"
            )
        ).all()
        assert granted == []
        with pytest.raises(DBAPIError) as err:
            session.execute(text("TRUNCATE iso_notes CASCADE"))
        assert getattr(err.value.orig, "sqlstate", None) == "42501"
    assert pg.owner_scalar("SELECT count(*) FROM iso_notes") == COUNTS[A]["notes"] + COUNTS[B]["notes"]


def test_an_error_in_a_where_clause_never_reveals_another_tenants_row(pg: Env) -> None:
    """The policy's qual runs before a non-leakproof condition of the query: an expression that
    fails on B's row (a division by zero) is never evaluated on it."""
    oracle = "SELECT count(*) FROM iso_notes WHERE 1 / (CASE WHEN title = 'Extra' THEN 0 ELSE 1 END) = 1"
    with pg.factory.for_instance(A) as session:
        assert session.execute(text(oracle)).scalar() == COUNTS[A]["notes"]  # B's "Extra" not reached


def _kill_then_b(
    pg: Env,
    run: Run,
    url: str,
    *,
    may_survive: bool = False,
    b_does: Callable[[Session], Any] = _b_reads,
    checked_out: Callable[[], int] | None = None,
) -> None:
    pid = run(A, lambda s: s.execute(text("SELECT pg_backend_pid()")).scalar())
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1)) as a:
        a.execute("SELECT pg_terminate_backend(%s)", (pid,))
    try:
        run(B, b_does)
    except Exception as exc:  # directly; PgBouncer reconnects for a client between transactions
        shown = f"{exc}\n{exc!r}"
        assert pg.seal(B).split(".", 1)[1] not in shown, shown
        assert registration_proof(pg.key, B).split(".", 1)[1] not in shown, shown
    else:
        assert may_survive, "B's request on the killed connection did not fail"
    if checked_out is not None:  # the broken connection went back to the pool (to be discarded)
        assert checked_out() == 0
    assert run(B, _b_reads) == COUNTS[B]["notes"]  # the pool replaced the connection


KILLS_ITS_BACKEND = (b"SELECT pg_terminate_backend(pg_backend_pid())",)


@pytest.mark.parametrize("route", ["direct", "pgbouncer"])
@pytest.mark.parametrize("flavor", ["sync", "async"])
def test_a_backend_dying_between_begin_and_the_binding_frees_the_pool(
    route: str, flavor: str, iso_database: Database, request: pytest.FixtureRequest
) -> None:
    """The backend dies after BEGIN, before the binding's answer (a restart, a failover, an
    administrator's `pg_terminate_backend`): the request fails, and the pool's only connection is
    discarded, not kept checked out. Through PgBouncer the client socket stays open with the
    pipeline's Sync never answered; only closing the connection frees the slot."""
    url, connect_args = iso_database.runtime_url, {}
    if route == "pgbouncer":
        url = via_port(url, request.getfixturevalue("bouncer_port"))
        connect_args = {"prepare_threshold": None}
    pool: dict[str, Any] = {"pool_size": 1, "max_overflow": 0, "pool_timeout": 5}
    pool["connect_args"] = connect_args
    if flavor == "sync":
        engine = create_engine(url, **pool)
        assert install(engine)
        with engine.connect() as conn:
            assert arm_commands(conn.connection.driver_connection, KILLS_ITS_BACKEND)
            with pytest.raises(DBAPIError) as err:
                conn.execute(text("SELECT 1"))
        checked_out = engine.pool.checkedout()  # type: ignore[attr-defined]
        with engine.connect() as conn:
            after = conn.execute(text("SELECT 1")).scalar()
        engine.dispose()
    else:

        async def go() -> tuple[pytest.ExceptionInfo[DBAPIError], int, Any]:
            engine = create_async_engine(url, **pool)
            assert install(engine.sync_engine)
            async with engine.connect() as conn:
                raw = await conn.get_raw_connection()
                assert arm_commands(raw.driver_connection, KILLS_ITS_BACKEND)
                with pytest.raises(DBAPIError) as err:
                    await conn.execute(text("SELECT 1"))
            checked_out = engine.sync_engine.pool.checkedout()  # type: ignore[attr-defined]
            async with engine.connect() as conn:
                after = (await conn.execute(text("SELECT 1"))).scalar()
            await engine.dispose()
            return err, checked_out, after

        err, checked_out, after = asyncio.run(go())
    assert err.value.connection_invalidated, err.value  # a disconnect: the pool drops it
    assert "administrator command" in str(err.value)  # the server's reason, not libpq's pipeline
    assert checked_out == 0
    assert after == 1  # the next request gets a new connection


def test_a_binding_statement_that_fails_never_shows_the_seal(
    pg: Env, user_class_tenants: Run, iso_database: Database
) -> None:
    """A kills the backend of the pooled connection (`pg_terminate_backend`: same role; a server
    restart does the same): B's next request fails on its binding statement, and the error, which
    applications log, names neither B's seal nor its parameters."""
    _kill_then_b(pg, user_class_tenants, iso_database.runtime_url)


def test_a_killed_connection_fails_the_next_tenant_without_showing_its_seal(
    pg: Env, tenants: Runner, iso_database: Database, request: pytest.FixtureRequest
) -> None:
    """The same on the fast path (the binding rides with BEGIN), directly and through PgBouncer."""
    _kill_then_b(
        pg,
        tenants.run,
        iso_database.runtime_url,
        may_survive="pgbouncer" in request.node.name,
        checked_out=tenants.checked_out,
    )


def test_a_killed_connection_never_shows_the_registration_proof(
    pg: Env, tenants: Runner, iso_database: Database, request: pytest.FixtureRequest
) -> None:
    """A first request registers its tenant (`for_token`): that statement carries a registration
    proof, a secret like the seal; a failure on it names no parameter."""
    try:
        _kill_then_b(
            pg,
            tenants.run,
            iso_database.runtime_url,
            may_survive="pgbouncer" in request.node.name,
            b_does=lambda s: upsert_seen_tenant(s, B, site_id="site-b"),
            checked_out=tenants.checked_out,
        )
    finally:
        pg.owner_execute("DELETE FROM tenants WHERE instance_id = :b AND site_id = 'site-b'", b=B)


def test_a_copy_left_in_progress_never_blocks_the_next_request(
    pg: Env, tenants: Runner, request: pytest.FixtureRequest
) -> None:
    """A starts ``COPY ... TO STDOUT`` through ``execute()`` (psycopg refuses it, with the COPY
    already running on the server): the connection cannot be rolled back or reused. It is
    discarded, and B's request on the pool's only slot gets a working connection."""
    with pytest.raises(DBAPIError):
        tenants.run(A, lambda s: s.execute(text("COPY (SELECT * FROM iso_notes) TO STDOUT")))
    assert tenants.checked_out() == 0
    assert tenants.run(B, _b_reads) == COUNTS[B]["notes"]
