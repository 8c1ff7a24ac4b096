"""`tenancy check` finds every object through which a tenant's statement runs code as someone
else (rules; SECURITY DEFINER functions behind triggers, defaults, generated columns,
constraints, domains, indexes, policies, views, operators, casts, event triggers), and the
rule and trigger attacks really cross tenants."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import Engine, create_engine, text

import tenancy
from tenancy.commands.main import main
from tenancy.postgres.audit import Finding, audit
from tenancy.postgres.isolation import enable_isolation
from tenancy.testing.postgres import Database
from tests.conftest import migrate

pytestmark = pytest.mark.postgres

A = uuid.UUID("a0000000-0000-4000-8000-00000000000a")
B = uuid.UUID("b0000000-0000-4000-8000-00000000000b")

# A definer function owned by the tables' owner (BYPASSRLS): it sees every tenant's notes.
# `public.notes`: PostgreSQL 17+ runs CREATE MATERIALIZED VIEW with search_path = pg_catalog, pg_temp.
PEEK = (
    "CREATE FUNCTION peek() RETURNS int LANGUAGE sql STABLE SECURITY DEFINER"
    " AS $$ SELECT count(*)::int FROM public.notes $$"
)
PLUS_ONE = (
    "CREATE FUNCTION plus_one(int) RETURNS int LANGUAGE sql IMMUTABLE SECURITY DEFINER AS 'SELECT $1 + 1'"
)


@pytest.fixture
def db(empty_pg_database: Database, monkeypatch) -> Database:
    """A migrated database with two tenant tables, items and notes, granted to the runtime role."""
    monkeypatch.setenv("TENANCY_ADMIN_DATABASE_URL", empty_pg_database.admin_url)
    monkeypatch.setenv("DATABASE_URL", empty_pg_database.runtime_url)
    engine = create_engine(empty_pg_database.admin_url)
    with engine.begin() as conn:
        for table in ("items", "notes"):
            conn.execute(
                text(
                    f"CREATE TABLE {table} (instance_id uuid NOT NULL, id int NOT NULL,"
                    " PRIMARY KEY (instance_id, id))"
                )
            )
            enable_isolation(conn, table)
    migrate(engine, runtime_role=empty_pg_database.runtime)
    engine.dispose()
    return empty_pg_database


@pytest.fixture
def engines(db: Database) -> Iterator[tuple[Engine, Engine]]:
    runtime, admin = create_engine(db.runtime_url), create_engine(db.admin_url)
    yield runtime, admin
    runtime.dispose()
    admin.dispose()


def _owner_sql(db: Database, *statements: str) -> None:
    engine = create_engine(db.admin_url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(text(statement))
    finally:
        engine.dispose()


def _findings(db: Database) -> list[Finding]:
    engine = create_engine(db.admin_url)
    try:
        with engine.connect() as conn:
            return audit(conn, runtime_role=db.runtime)
    finally:
        engine.dispose()


def _seed(sessions: tenancy.TenantSessionFactory) -> None:
    """Each tenant has note 1 (and A has item 1)."""
    for tenant in (A, B):
        with sessions.for_instance(tenant) as s, s.begin():
            s.execute(text("INSERT INTO notes (instance_id, id) VALUES (:t, 1)"), {"t": tenant})
    with sessions.for_instance(A) as s, s.begin():
        s.execute(text("INSERT INTO items (instance_id, id) VALUES (:t, 1)"), {"t": A})


def _notes_of_b(admin: Engine) -> int:
    with admin.connect() as conn:
        return int(
            conn.execute(text("SELECT count(*) FROM notes WHERE instance_id = :b"), {"b": B}).scalar_one()
        )


def test_a_clean_schema_passes_and_an_invoker_trigger_is_no_finding(db: Database, capsys) -> None:
    """No false positives: a SECURITY INVOKER trigger runs as the tenant, under its policy."""
    _owner_sql(
        db,
        "CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$",
        "CREATE TRIGGER items_touch BEFORE INSERT ON items FOR EACH ROW EXECUTE FUNCTION touch()",
    )
    assert _findings(db) == []
    assert main(["check"]) == 0
    assert "ok" in capsys.readouterr().out


def test_a_rule_deletes_other_tenants_rows_and_check_reports_it(
    db: Database, engines: tuple[Engine, Engine], capsys
) -> None:
    """A deleting its own item deletes B's note: the rule's action runs as the BYPASSRLS owner."""
    runtime, admin = engines
    sessions = tenancy.TenantSessionFactory(runtime, admin_engine=admin)
    _seed(sessions)
    _owner_sql(
        db, "CREATE RULE items_cascade AS ON DELETE TO items DO ALSO DELETE FROM notes WHERE id = old.id"
    )
    assert _notes_of_b(admin) == 1
    with sessions.for_instance(A) as s, s.begin():
        s.execute(text("DELETE FROM items WHERE id = 1"))
    assert _notes_of_b(admin) == 0  # the attack crossed tenants

    assert [(f.kind, f.subject) for f in _findings(db)] == [("rule", "rule items_cascade on items")]
    assert main(["check", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert "DROP RULE items_cascade ON items" in report["findings"][0]["message"]


def test_a_definer_trigger_without_execute_deletes_other_tenants_rows_and_check_reports_it(
    db: Database, engines: tuple[Engine, Engine], capsys
) -> None:
    """Triggers fire whether or not the runtime role may EXECUTE their function."""
    runtime, admin = engines
    sessions = tenancy.TenantSessionFactory(runtime, admin_engine=admin)
    _seed(sessions)
    _owner_sql(
        db,
        "CREATE FUNCTION wipe() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER"
        " AS $$ BEGIN DELETE FROM notes WHERE id = NEW.id; RETURN NEW; END $$",
        "REVOKE EXECUTE ON FUNCTION wipe() FROM PUBLIC",
        "CREATE TRIGGER items_wipe AFTER UPDATE ON items FOR EACH ROW EXECUTE FUNCTION wipe()",
    )
    with sessions.for_instance(A) as s, s.begin():
        s.execute(text("UPDATE items SET id = 1 WHERE id = 1"))
    assert _notes_of_b(admin) == 0  # the attack crossed tenants

    found = _findings(db)
    assert [(f.kind, f.subject) for f in found] == [("definer", "trigger items_wipe on table items")]
    assert "SECURITY DEFINER function wipe()" in found[0].message
    assert "ALTER FUNCTION wipe() SECURITY INVOKER" in found[0].message
    assert main(["check"]) == 1
    assert "definer: trigger items_wipe on table items" in capsys.readouterr().out


def test_a_default_reads_every_tenants_rows(db: Database, engines: tuple[Engine, Engine]) -> None:
    """A default calling a definer function counts B's notes inside A's insert; reported."""
    runtime, admin = engines
    sessions = tenancy.TenantSessionFactory(runtime, admin_engine=admin)
    _seed(sessions)
    _owner_sql(db, PEEK, "ALTER TABLE items ADD COLUMN seen int DEFAULT peek()")
    with sessions.for_instance(A) as s, s.begin():
        assert s.execute(text("SELECT count(*) FROM notes")).scalar_one() == 1  # RLS: A's own
        seen = s.execute(
            text("INSERT INTO items (instance_id, id) VALUES (:a, 2) RETURNING seen"), {"a": A}
        ).scalar_one()
    assert seen == 2  # both tenants' notes: the default ran as the owner
    assert ("definer", "default of column items.seen") in {(f.kind, f.subject) for f in _findings(db)}


# (statements as the owner, the finding's subject): each object reaches a definer function.
CASES = [
    (
        ["ALTER TABLE items ADD COLUMN n int CONSTRAINT items_peek CHECK (peek() >= 0)"],
        "constraint items_peek on table items",
    ),
    (
        ["CREATE DOMAIN guarded AS int CHECK (peek() >= 0)", "ALTER TABLE items ADD COLUMN g guarded"],
        "constraint guarded_check on domain guarded",
    ),
    (
        [
            "CREATE DOMAIN inner_d AS int CHECK (peek() >= 0)",
            "CREATE DOMAIN outer_d AS inner_d",
            "ALTER TABLE items ADD COLUMN g outer_d",
        ],
        "constraint inner_d_check on domain inner_d",
    ),
    (
        ["CREATE DOMAIN counted AS int DEFAULT peek()", "ALTER TABLE items ADD COLUMN c counted"],
        "type counted",
    ),
    (
        [PLUS_ONE, "ALTER TABLE items ADD COLUMN next_id int GENERATED ALWAYS AS (plus_one(id)) STORED"],
        "generated column items.next_id",
    ),
    ([PLUS_ONE, "CREATE INDEX items_next ON items (instance_id, plus_one(id))"], "index items_next"),
    (
        [PLUS_ONE, "CREATE INDEX items_partial ON items (instance_id) WHERE plus_one(id) > 1"],
        "index items_partial",
    ),
    (
        ["CREATE POLICY counted ON items AS RESTRICTIVE USING (peek() >= 0)"],
        "policy counted on table items",
    ),
    (
        [
            "CREATE VIEW note_count WITH (security_invoker = true) AS SELECT peek() AS n",
            "GRANT SELECT ON note_count TO {runtime}",
        ],
        "view note_count",
    ),
    (
        [
            # Reading it runs nothing, but what it holds was computed with the owner's rights.
            "CREATE MATERIALIZED VIEW note_total AS SELECT peek() AS n",
            "GRANT SELECT ON note_total TO {runtime}",
        ],
        "materialized view note_total",
    ),
    (
        [
            # An invoker trigger function that calls the definer one by name (plpgsql keeps no
            # dependency on it): one level down is found too.
            "CREATE FUNCTION relay() RETURNS trigger LANGUAGE plpgsql"
            " AS $$ BEGIN PERFORM peek(); RETURN NEW; END $$",
            "CREATE TRIGGER items_relay BEFORE INSERT ON items FOR EACH ROW EXECUTE FUNCTION relay()",
        ],
        "trigger items_relay on table items",
    ),
    (
        [
            "CREATE FUNCTION sum_peek(int, int) RETURNS int LANGUAGE sql SECURITY DEFINER"
            " AS 'SELECT $1 + $2 + peek()'",
            "CREATE OPERATOR ### (LEFTARG = int, RIGHTARG = int, FUNCTION = sum_peek)",
        ],
        "operator ###(integer,integer)",
    ),
    (
        [
            "CREATE TYPE pair AS (a int, b int)",
            "CREATE FUNCTION to_pair(int) RETURNS pair LANGUAGE sql SECURITY DEFINER"
            " AS 'SELECT ROW($1, $1)::pair'",
            "CREATE CAST (int AS pair) WITH FUNCTION to_pair(int)",
        ],
        "cast (integer AS pair)",
    ),
]


@pytest.mark.parametrize(
    ("statements", "subject"), CASES, ids=[c[1].split(" ")[0] + str(i) for i, c in enumerate(CASES)]
)
def test_objects_that_reach_a_definer_function_are_findings(
    db: Database, statements: list[str], subject: str
) -> None:
    _owner_sql(
        db,
        PEEK,
        "REVOKE EXECUTE ON FUNCTION peek() FROM PUBLIC",
        *[s.format(runtime=f'"{db.runtime}"') for s in statements],
    )
    found = {(f.kind, f.subject): f.message for f in _findings(db)}
    assert ("definer", subject) in found, found
    assert "SECURITY DEFINER function" in found["definer", subject]
    assert "SECURITY INVOKER" in found["definer", subject]


def test_an_event_trigger_on_a_definer_function_is_a_finding(db: Database) -> None:
    with psycopg.connect(db.superuser_url, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION ddl_note() RETURNS event_trigger LANGUAGE plpgsql SECURITY DEFINER"
            " AS $$ BEGIN END $$"
        )
        conn.execute("CREATE EVENT TRIGGER ddl_note ON ddl_command_start EXECUTE FUNCTION ddl_note()")
    assert ("definer", "event trigger ddl_note") in {(f.kind, f.subject) for f in _findings(db)}


def test_tenancys_own_definer_functions_stay_exempt(db: Database) -> None:
    """The sealed policy calls tenancy.current_instance_id() (SECURITY DEFINER) on every tenant
    table: not a finding; a function of the same shape elsewhere is."""
    assert _findings(db) == []
    _owner_sql(
        db,
        "CREATE FUNCTION current_instance_id() RETURNS uuid LANGUAGE sql STABLE SECURITY DEFINER"
        " AS 'SELECT NULL::uuid'",
        "REVOKE EXECUTE ON FUNCTION current_instance_id() FROM PUBLIC",
        "ALTER TABLE items ADD COLUMN copied uuid DEFAULT public.current_instance_id()",
    )
    assert [(f.kind, f.subject) for f in _findings(db)] == [("definer", "default of column items.copied")]
