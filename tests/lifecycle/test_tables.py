"""Every tenant table, found once: order, generated keys, and refusal of a foreign-key cycle."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from tenancy.errors import LifecycleError
from tenancy.lifecycle import discover, purge


def test_tables_come_parents_first_with_their_generated_keys(admin: Engine) -> None:
    with admin.connect() as conn:
        tables = discover(conn)
    order = [t.name for t in tables.insert_order]
    assert "tenants" not in order
    for parent, child in [
        ("folders", "notes"),
        ("notes", "note_tags"),
        ("tags", "note_tags"),
        ("notes", "comments"),
    ]:
        assert order.index(parent) < order.index(child)
    assert [t.name for t in tables.delete_order] == order[::-1]
    generated = {t.name: [c.name for c in t.generated] for t in tables.insert_order}
    assert generated == {
        "folders": ["id"],
        "notes": ["id"],
        "tags": [],
        "note_tags": [],
        "comments": ["id"],
        "audit_log": ["id"],
    }
    assert [fk.referred for fk in tables.by_name["folders"].self_references] == ["folders"]


def test_a_foreign_key_cycle_between_tables_is_refused_naming_them(admin: Engine) -> None:
    with admin.begin() as conn:
        conn.execute(text("CREATE SCHEMA cyc"))
        conn.execute(
            text("CREATE TABLE cyc.a (instance_id uuid, id int, b_id int, PRIMARY KEY (instance_id, id))")
        )
        conn.execute(
            text(
                "CREATE TABLE cyc.b (instance_id uuid, id int, a_id int, PRIMARY KEY (instance_id, id),"
                " FOREIGN KEY (instance_id, a_id) REFERENCES cyc.a DEFERRABLE)"
            )
        )
        conn.execute(text("ALTER TABLE cyc.a ADD FOREIGN KEY (instance_id, b_id) REFERENCES cyc.b"))
    try:
        with (
            admin.connect() as conn,
            pytest.raises(LifecycleError, match="cycle between tenant tables a -> b -> a"),
        ):
            discover(conn, schema="cyc")
        with pytest.raises(LifecycleError, match="cycle"):
            purge(admin, schema="cyc")
    finally:
        with admin.begin() as conn:
            conn.execute(text("DROP SCHEMA cyc CASCADE"))
