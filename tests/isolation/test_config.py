"""Configuration, roles, migrations and tokens (ISOLATION.md scenarios 22 and 53-58)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from alembic.autogenerate import produce_migrations, render_python_code
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import Integer, MetaData, String, create_engine, func, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import tenancy.migrations
from tenancy import (
    ConfigurationError,
    InvalidInstanceId,
    InvalidToken,
    Tenant,
    TenantRemoved,
    TenantScoped,
    TenantSessionFactory,
)
from tenancy.models import NAMING_CONVENTION, is_tenant_table
from tenancy.tenants.registration import TenantRegistry
from tenancy.testing.postgres import sqlalchemy_url
from tests.isolation.models import TENANT_TABLES, Note
from tests.isolation.support import COUNTS, A, B, Env, count_statements

# What `tenancy check` will audit; the command is not in this tree yet, so the battery asks the
# catalogs itself: every table with an instance_id column must have RLS enabled, forced and a policy.
UNPROTECTED_SQL = text(
    """
    SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
      AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'instance_id')
      AND NOT (c.relrowsecurity AND c.relforcerowsecurity
               AND EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid))
    ORDER BY 1
    """
)


# Views that run with their owner's rights, and SECURITY DEFINER functions, in our schema: owned
# by the BYPASSRLS owner they would read past RLS. (Also for `tenancy check`, once it exists.)
OWNER_RIGHTS_SQL = text(
    """
    SELECT relname FROM pg_class
    WHERE relkind = 'v' AND relnamespace = 'public'::regnamespace
      AND NOT coalesce('security_invoker=true' = ANY(reloptions), false)
    UNION ALL
    SELECT proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace AND prosecdef
    ORDER BY 1
    """
)


@pytest.mark.parametrize(
    "value",
    [
        0,
        "",
        " ",
        None,
        "1 OR 1=1",
        "x" * 10_000,
        "' OR ''='",
        "00000000-0000-0000-0000-00000000000",
        1.5,
        b"\x00" * 16,
    ],
    ids=["zero", "empty", "blank", "none", "sql", "10k", "quote", "short-uuid", "float", "bytes"],
)
def test_s22_odd_instance_ids_are_refused_before_any_sql(pg: Env, value: object) -> None:
    """Scenario 22: 0, '', None, '1 OR 1=1', a 10k-char string ... raise InvalidInstanceId and run no
    SQL.
    """
    with count_statements(pg.engine) as statements, pytest.raises(InvalidInstanceId) as err:
        pg.factory.for_instance(value)  # type: ignore[arg-type]
    assert statements == []
    assert len(str(err.value)) < 200  # the message never echoes an attacker-sized value


def test_s22_accepted_spellings_set_the_canonical_id(pg: Env) -> None:
    """Scenario 22: upper case, braces or no hyphens select the same tenant; the setting holds the
    canonical id.
    """
    for spelling in (str(A).upper(), "{" + str(A) + "}", A.hex, A):
        with pg.factory.for_instance(spelling) as session:
            setting = session.execute(text("SELECT current_setting('tenancy.instance_id')")).scalar_one()
            assert setting == str(A)
            assert session.scalar(select(func.count()).select_from(Note)) == COUNTS[A]["notes"]


def test_s22_unsaved_tenant_has_no_id_and_opens_nothing(pg: Env) -> None:
    """Scenario 22: an unsaved Tenant() has no instance_id; using it raises InvalidInstanceId before any
    SQL.
    """
    with count_statements(pg.engine) as statements, pytest.raises(InvalidInstanceId):
        pg.factory.for_instance(Tenant().instance_id)
    assert statements == []


def test_s53_runtime_role_is_plain_and_every_tenant_table_is_forced(pg: Env) -> None:
    """Scenario 53: the runtime role is no superuser, no BYPASSRLS, owns nothing; every tenant table has
    RLS+FORCE+policy.
    """
    with pg.engine.connect() as conn:
        superuser, bypass = conn.execute(
            text("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
        ).one()
        owned = conn.execute(
            text(
                "SELECT count(*) FROM pg_class"
                " WHERE relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)"
            )
        ).scalar_one()
    assert (superuser, bypass, owned) == (False, False, 0)
    with pg.owner.connect() as conn:
        assert conn.execute(UNPROTECTED_SQL).scalars().all() == []
        for table in (*TENANT_TABLES, "tenants"):
            row = conn.execute(
                text(
                    "SELECT c.relrowsecurity, c.relforcerowsecurity, count(p.*) FROM pg_class c "
                    "LEFT JOIN pg_policy p ON p.polrelid = c.oid WHERE c.relname = :t GROUP BY 1, 2"
                ),
                {"t": table},
            ).one()
            assert tuple(row) == (True, True, 1), table


def test_s53_new_table_without_policy_is_found_by_the_audit(pg: Env) -> None:
    """Scenario 53: a tenant table created without isolation is reported; enable_isolation() clears the
    finding.
    """
    try:
        with pg.owner.begin() as conn:
            conn.execute(
                text(
                    "CREATE TABLE iso_forgotten"
                    " (instance_id uuid NOT NULL, id int, PRIMARY KEY (instance_id, id))"
                )
            )
            assert conn.execute(UNPROTECTED_SQL).scalars().all() == ["iso_forgotten"]
            tenancy.enable_isolation(conn, "iso_forgotten")
            assert conn.execute(UNPROTECTED_SQL).scalars().all() == []
    finally:
        with pg.owner.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS iso_forgotten"))


def test_s53_factory_refuses_an_owner_or_bypassrls_runtime_role(pg: Env) -> None:
    """Scenario 53: TenantSessionFactory on the owner's engine (BYPASSRLS, owns the tables) raises
    ConfigurationError.
    """
    factory = TenantSessionFactory(pg.owner)
    with pytest.raises(ConfigurationError, match="BYPASSRLS") as err:
        factory.for_instance(A)
    assert "owns tenant tables" in str(err.value)
    with pytest.raises(ConfigurationError):
        factory.for_instance(B)  # refused every time, not only the first
    superuser = create_engine(sqlalchemy_url(pg.extra["database"].superuser_url))
    try:
        with pytest.raises(ConfigurationError, match="superuser"):
            TenantSessionFactory(superuser).for_instance(A)
    finally:
        superuser.dispose()


def test_s53_a_tenant_session_never_runs_on_a_connection_that_skips_rls(pg: Env) -> None:
    """Scenario 53: a tenant session re-bound (binds=, session.bind) to the owner's engine refuses to
    run.
    """
    factory = TenantSessionFactory(pg.engine, binding_key=pg.key, session_options={"binds": {Note: pg.owner}})
    with factory.for_instance(A) as session, pytest.raises(ConfigurationError, match="BYPASSRLS"):
        session.execute(text("SELECT instance_id FROM iso_notes"), bind_arguments={"mapper": Note})
    with pg.factory.for_instance(A) as session:
        session.bind = pg.owner
        with pytest.raises(ConfigurationError, match="BYPASSRLS"):
            session.execute(text("SELECT instance_id FROM iso_notes"))


class _NewBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Widget(TenantScoped, _NewBase):
    """A tenant model added after the first release (scenario 54)."""

    __tablename__ = "iso_widgets"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(32))


def test_s54_autogenerate_emits_isolation_and_downgrade_removes_it(pg: Env) -> None:
    """Scenario 54: autogenerate for a new tenant model emits ENABLE/FORCE/policy; upgrade as owner works
    for the runtime role; downgrade removes it.
    """
    assert is_tenant_table(Widget.__table__)

    def only_widgets(obj, name, type_, reflected, compare_to) -> bool:
        return type_ != "table" or name == "iso_widgets"

    with pg.owner.begin() as conn:
        context = MigrationContext.configure(
            conn, opts={"target_metadata": _NewBase.metadata, "include_object": only_widgets}
        )
        script = produce_migrations(context, _NewBase.metadata)
        tenancy.migrations.writer(context, None, [script])
        upgrade_code = render_python_code(script.upgrade_ops)
        downgrade_code = render_python_code(script.downgrade_ops)
        assert "op.enable_tenant_isolation('iso_widgets')" in upgrade_code
        assert "op.disable_tenant_isolation('iso_widgets')" in downgrade_code
        assert downgrade_code.index("disable_tenant_isolation") < downgrade_code.index("drop_table")
        ops = Operations(context)
        for op in script.upgrade_ops.ops:
            ops.invoke(op)
        assert conn.execute(UNPROTECTED_SQL).scalars().all() == []
    try:
        with pg.factory.for_instance(A) as session:  # default privileges: the runtime role can use it
            session.add(Widget(id=1, name="w"))
            session.commit()
        with pg.factory.for_instance(B) as session:
            assert session.scalars(select(Widget)).all() == []
        with pg.owner.connect() as conn:
            assert conn.execute(
                text("SELECT relforcerowsecurity FROM pg_class WHERE relname = 'iso_widgets'")
            ).scalar()
    finally:
        with pg.owner.begin() as conn:
            context = MigrationContext.configure(conn)
            ops = Operations(context)
            for op in script.downgrade_ops.ops:
                ops.invoke(op)
            assert conn.execute(text("SELECT to_regclass('iso_widgets')")).scalar() is None
            assert (
                conn.execute(
                    text(
                        "SELECT count(*) FROM pg_policy"
                        " WHERE polname LIKE 'tenancy%' AND polrelid::regclass::text = 'iso_widgets'"
                    )
                ).scalar()
                == 0
            )


def test_s55_views_and_functions_do_not_bypass_rls(pg: Env) -> None:
    """Scenario 55: a security_invoker view and a SECURITY INVOKER function over notes show A only A's
    rows.
    """
    with pg.factory.for_instance(A) as session:
        assert (
            session.execute(text("SELECT count(*) FROM iso_note_titles")).scalar_one() == COUNTS[A]["notes"]
        )
        assert {r[0] for r in session.execute(text("SELECT instance_id FROM iso_note_titles"))} == {A}
        assert session.execute(text("SELECT iso_note_count()")).scalar_one() == COUNTS[A]["notes"]
    with pg.tenant_connection(None) as conn:
        assert conn.execute(text("SELECT count(*) FROM iso_note_titles")).scalar_one() == 0
        assert conn.execute(text("SELECT iso_note_count()")).scalar_one() == 0
    with pg.owner.connect() as conn:
        assert conn.execute(OWNER_RIGHTS_SQL).scalars().all() == []


def test_s55_audit_finds_a_view_or_function_running_with_owner_rights(pg: Env) -> None:
    """Scenario 55: a view without security_invoker or a SECURITY DEFINER function is reported."""
    # Owned by the BYPASSRLS owner, either would show every tenant's rows to the runtime role.
    try:
        with pg.owner.begin() as conn:
            conn.execute(text("CREATE VIEW iso_definer_view AS SELECT title FROM iso_notes"))
            conn.execute(
                text(
                    "CREATE FUNCTION iso_definer_count() RETURNS bigint LANGUAGE sql SECURITY DEFINER"
                    " AS $$ SELECT count(*) FROM iso_notes $$"
                )
            )
            found = conn.execute(OWNER_RIGHTS_SQL).scalars().all()
            assert found == ["iso_definer_count", "iso_definer_view"]
    finally:
        with pg.owner.begin() as conn:
            conn.execute(text("DROP VIEW IF EXISTS iso_definer_view"))
            conn.execute(text("DROP FUNCTION IF EXISTS iso_definer_count()"))


@pytest.mark.parametrize("setting", [None, "", "not-a-uuid", "1 OR 1=1", "' OR ''='", str(uuid.uuid4())])
@pytest.mark.parametrize("seal", [None, "", "garbage", "1.", "99999999999999999999.00", "1.' OR ''='"])
def test_s56_unset_empty_or_garbage_setting_gives_no_rows_and_leaks_nothing(
    pg: Env, setting: str | None, seal: str | None
) -> None:
    """Scenario 56: no, empty or garbage settings (id or seal) read 0 rows and never raise."""
    with pg.engine.connect() as conn, conn.begin():
        for name, value in (("tenancy.instance_id", setting), ("tenancy.seal", seal)):
            if value is not None:
                conn.execute(text("SELECT set_config(:n, :v, true)"), {"n": name, "v": value})
        assert conn.execute(text("SELECT title, body FROM iso_notes")).all() == []
        assert conn.execute(text("SELECT tenancy.current_instance_id()")).scalar_one() is None


@dataclass
class _Info:
    instance_id: uuid.UUID
    site_id: str | None = None


class _TableResolver:
    """A resolver that knows a fixed set of valid tokens; every other token is InvalidToken (as Wix
    says).
    """

    def __init__(self, tokens: dict[str, uuid.UUID]) -> None:
        self.tokens = tokens

    def resolve(self, token: str) -> _Info:
        token = token.removeprefix("Bearer ")
        if token not in self.tokens:
            raise InvalidToken("token refused")
        return _Info(self.tokens[token], site_id="site")


@pytest.mark.parametrize("token", ["forged", "Bearer expired", "other-app", "", "Bearer "])
def test_s57_refused_tokens_get_one_error_and_open_nothing(pg: Env, token: str) -> None:
    """Scenario 57: any token the resolver refuses gives the same InvalidToken, and no session or SQL."""
    factory = TenantSessionFactory(pg.engine, binding_key=pg.key, resolver=_TableResolver({"good": A}))
    with count_statements(pg.engine) as statements, pytest.raises(InvalidToken) as err:
        factory.for_token(token)
    assert statements == [] and str(err.value) == "token refused"
    with pytest.raises(ConfigurationError):
        pg.factory.for_token("good")  # no resolver configured: refused, never a fallback tenant


def test_s57_active_token_registers_unknown_and_refuses_removed_tenant(pg: Env) -> None:
    """Scenario 57 (our design): an active token for an unseen instance registers it; a removed
    tenant is refused (TenantRemoved), never reactivated by a token, and its row stays removed.
    """
    new = uuid.UUID("cccccccc-0000-4000-8000-00000000000c")
    with pg.owner.begin() as conn:
        conn.execute(text("DELETE FROM tenants"))
        conn.execute(
            text("INSERT INTO tenants (instance_id, status, first_seen_at) VALUES (:b, 'removed', now())"),
            {"b": B},
        )
    factory = TenantSessionFactory(
        pg.engine, binding_key=pg.key, resolver=_TableResolver({"new": new, "back": B})
    )
    with factory.for_token("Bearer new") as session:
        assert session.info["tenancy.instance_id"] == new
        assert session.scalars(select(Tenant.status)).all() == ["active"]
    with pytest.raises(TenantRemoved):
        factory.for_token("back")
    assert pg.owner_scalar("SELECT status FROM tenants WHERE instance_id = :b", b=B) == "removed"
    assert pg.owner_scalar("SELECT count(*) FROM tenants") == 2


def test_s58_tenant_cache_is_keyed_by_tenant_and_removal_lands_within_ttl(pg: Env) -> None:
    """Scenario 58: the registration cache is per tenant; after a tenant is marked removed, its next
    token is refused once the TTL has passed (and the row stays removed).
    """
    now = [1000.0]
    factory = TenantSessionFactory(pg.engine, binding_key=pg.key, resolver=_TableResolver({"a": A, "b": B}))
    factory.registry = TenantRegistry(ttl=60, clock=lambda: now[0])
    with pg.owner.begin() as conn:
        conn.execute(text("DELETE FROM tenants"))
    factory.for_token("a").close()
    assert pg.owner_scalar("SELECT count(*) FROM tenants") == 1
    factory.for_token("b").close()  # A's cache entry does not cover B
    assert pg.owner_scalar("SELECT count(*) FROM tenants") == 2
    with pg.owner.begin() as conn:
        conn.execute(text("UPDATE tenants SET status = 'removed' WHERE instance_id = :a"), {"a": A})
    now[0] += 30
    with count_statements(pg.engine) as statements:
        factory.for_token("a").close()  # cached: no write inside the TTL
    assert statements == []
    assert pg.owner_scalar("SELECT status FROM tenants WHERE instance_id = :a", a=A) == "removed"
    now[0] += 31
    with pytest.raises(TenantRemoved):
        factory.for_token("a")
    assert pg.owner_scalar("SELECT status FROM tenants WHERE instance_id = :a", a=A) == "removed"
