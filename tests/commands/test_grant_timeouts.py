"""`tenancy grant` gives the runtime role lock, statement and idle-in-transaction timeouts, and
`tenancy check` reports one that is missing or off: a tenant that locks a table, sleeps or
idles in a transaction is cut off instead of making every other tenant wait."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DBAPIError

import tenancy
from tenancy.commands.main import main
from tenancy.postgres.isolation import enable_isolation
from tenancy.testing.postgres import Database
from tests.conftest import migrate

pytestmark = pytest.mark.postgres

A = uuid.UUID("a0000000-0000-4000-8000-00000000000a")
B = uuid.UUID("b0000000-0000-4000-8000-00000000000b")
NAMES = ("idle_in_transaction_session_timeout", "lock_timeout", "statement_timeout")


@pytest.fixture
def db(empty_pg_database: Database, monkeypatch) -> Database:
    """A migrated database with the app table items, and the runtime role without timeouts
    (as a superuser who did not follow the README's setup leaves it)."""
    monkeypatch.setenv("TENANCY_ADMIN_DATABASE_URL", empty_pg_database.admin_url)
    monkeypatch.setenv("DATABASE_URL", empty_pg_database.runtime_url)
    with psycopg.connect(empty_pg_database.superuser_url, autocommit=True) as conn:
        conn.execute(f'ALTER ROLE "{empty_pg_database.runtime}" RESET ALL'.encode())
    engine = create_engine(empty_pg_database.admin_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE items (instance_id uuid NOT NULL, id int NOT NULL,"
                " PRIMARY KEY (instance_id, id))"
            )
        )
        enable_isolation(conn, "items")
    migrate(engine, runtime_role=empty_pg_database.runtime)
    engine.dispose()
    return empty_pg_database


def _role_settings(db: Database) -> dict[str, str]:
    with psycopg.connect(db.superuser_url) as conn:
        rows = conn.execute(
            "SELECT unnest(setconfig) FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole"
            " WHERE r.rolname = %s",
            (db.runtime,),
        ).fetchall()
    return dict(str(row[0]).split("=", 1) for row in rows)


def _check(capsys) -> tuple[int, list[dict[str, str]]]:
    capsys.readouterr()
    code = main(["check", "--json"])
    return code, json.loads(capsys.readouterr().out)["findings"]


def test_missing_timeouts_are_findings_and_grant_sets_the_defaults(db: Database, capsys) -> None:
    """Without timeouts check fails naming each; `tenancy grant` (as the owner, no CREATEROLE:
    through DATABASE_URL as the role itself) sets 5s/30s/60s and check passes."""
    code, findings = _check(capsys)
    assert code == 1
    assert sorted(f["message"].split(" ", 1)[0] for f in findings) == sorted(NAMES)
    assert all(" is off (0) for the runtime role" in f["message"] for f in findings)  # server default
    assert all("tenancy grant" in f["message"] and "ALTER ROLE" in f["message"] for f in findings)

    assert main(["grant"]) == 0
    out = capsys.readouterr().out
    assert "lock_timeout = 5s" in out and "statement_timeout = 30s" in out
    assert _role_settings(db) == {
        "lock_timeout": "5s",
        "statement_timeout": "30s",
        "idle_in_transaction_session_timeout": "60s",
    }
    # A role-level lock_timeout is the README's mitigation, not a "role-level setting" finding.
    assert _check(capsys) == (0, [])


def test_a_timeout_turned_off_or_removed_is_reported(db: Database, capsys) -> None:
    assert main(["grant", "--statement-timeout", "0"]) == 0
    code, findings = _check(capsys)
    assert code == 1
    assert [f["message"].split(":", 1)[0] for f in findings] == [
        "statement_timeout is off (0) for the runtime role"
    ]
    assert main(["grant", "--statement-timeout", "45s"]) == 0
    assert _check(capsys) == (0, [])
    with psycopg.connect(db.superuser_url, autocommit=True) as conn:
        conn.execute(f'ALTER ROLE "{db.runtime}" RESET lock_timeout'.encode())
    code, findings = _check(capsys)
    assert code == 1 and [f["message"].split(":", 1)[0] for f in findings] == [
        "lock_timeout is off (0) for the runtime role"
    ]
    # Grant again: the missing one gets its default, the chosen one is kept.
    assert main(["grant"]) == 0
    assert _role_settings(db)["lock_timeout"] == "5s"
    assert _role_settings(db)["statement_timeout"] == "45s"


def test_a_bad_value_is_refused_before_anything_is_granted(db: Database, capsys) -> None:
    assert main(["grant", "--lock-timeout", "5 parsecs"]) == 2
    err = capsys.readouterr().err
    assert "lock_timeout = '5 parsecs' is not a timeout" in err
    assert "lock_timeout" not in _role_settings(db)


def test_without_createrole_or_the_roles_url_the_statements_are_printed(
    db: Database, capsys, monkeypatch
) -> None:
    """The owner may not ALTER ROLE another role; with no URL of the runtime role the grant
    still succeeds and prints what a superuser must run; check keeps failing until then."""
    monkeypatch.setenv("DATABASE_URL", db.admin_url)
    assert main(["grant", db.runtime, "--lock-timeout", "2s"]) == 0
    err = capsys.readouterr().err
    assert f"run as a superuser: ALTER ROLE \"{db.runtime}\" SET lock_timeout = '2s'" in err
    assert main(["check", "--role", db.runtime]) == 1


@contextmanager
def _sessions(db: Database, *grant_args: str) -> Iterator[tenancy.TenantSessionFactory]:
    """Timeouts set through `tenancy grant *grant_args*`, and tenant sessions on new connections
    (role-level settings apply from the next connection on)."""
    assert main(["grant", *grant_args]) == 0
    runtime: Engine = create_engine(db.runtime_url, pool_size=2, max_overflow=0)
    admin = create_engine(db.admin_url)
    try:
        yield tenancy.TenantSessionFactory(runtime, admin_engine=admin)
    finally:
        runtime.dispose()
        admin.dispose()


def _sqlstate(exc: DBAPIError) -> str | None:
    return getattr(exc.orig, "sqlstate", None)


def test_a_tenant_holding_a_table_lock_does_not_block_others_forever(db: Database) -> None:
    """A locks items; B's read gives up with lock_timeout's error (55P03) instead of queueing."""
    with _sessions(db, "--lock-timeout", "200ms") as sessions, sessions.for_instance(A) as a, a.begin():
        a.execute(text("LOCK TABLE items IN ACCESS EXCLUSIVE MODE"))
        with sessions.for_instance(B) as b, pytest.raises(DBAPIError) as caught:
            b.execute(text("SELECT count(*) FROM items")).scalar_one()
    assert _sqlstate(caught.value) == "55P03"
    assert "lock timeout" in str(caught.value)


def test_a_tenant_statement_that_runs_forever_is_cancelled(db: Database) -> None:
    with _sessions(db, "--statement-timeout", "200ms") as sessions:
        with sessions.for_instance(A) as a, pytest.raises(DBAPIError) as caught:
            a.execute(text("SELECT pg_sleep(600)"))
        assert _sqlstate(caught.value) == "57014"
        assert "statement timeout" in str(caught.value)
        with sessions.for_instance(B) as b:  # the next tenant is served
            assert b.execute(text("SELECT count(*) FROM items")).scalar_one() == 0


def test_a_tenant_transaction_left_idle_is_ended(db: Database) -> None:
    """A transaction that holds a lock and goes idle is ended by the server; its lock is gone."""
    with _sessions(db, "--idle-in-transaction-session-timeout", "200ms") as sessions:
        with sessions.for_instance(A) as a, pytest.raises(DBAPIError) as caught:
            a.execute(text("LOCK TABLE items IN ACCESS EXCLUSIVE MODE"))
            time.sleep(1.5)  # idle well past 200 ms: the server ends the session
            a.execute(text("SELECT 1"))
        assert "idle-in-transaction timeout" in str(caught.value)
        with sessions.for_instance(B) as b:
            assert b.execute(text("SELECT count(*) FROM items")).scalar_one() == 0
