"""Migrations on Citus: ``tenants`` distributed, autogenerate distributes new tenant tables
co-located with it (parents first), isolation on every shard, the runtime role granted."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from tenancy.errors import ConfigurationError
from tenancy.postgres.citus import (
    distribute_tenant_table,
    distributed_tables,
    placement_security,
    undistribute_tenant_table,
)
from tenancy.postgres.isolation import POLICY_NAME
from tests.citus.conftest import CitusDb


def _colocation(db: CitusDb) -> dict[str, tuple[str, int, int]]:
    with db.admin.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT logicalrelid::regclass::text, column_to_column_name(logicalrelid, partkey),"
                " colocationid, (SELECT count(*) FROM pg_dist_shard s WHERE s.logicalrelid = p.logicalrelid)"
                " FROM pg_dist_partition p"
            )
        ).all()
    return {name: (column, group, shards) for name, column, group, shards in rows}


def test_tenant_tables_are_distributed_by_instance_id_and_colocated(citus_db: CitusDb) -> None:
    tables = _colocation(citus_db)
    tenant_tables = {name: tables[name] for name in ("tenants", "folders", "notes")}
    assert {column for column, _, _ in tenant_tables.values()} == {"instance_id"}
    assert len({group for _, group, _ in tenant_tables.values()}) == 1, tables
    # The binding key is on every node (a reference table: no distribution column).
    assert set(tables) - set(tenant_tables) == {"tenancy.binding_keys"}
    assert tables["tenancy.binding_keys"][0] is None


def test_autogenerate_emits_distribution_after_isolation_parents_first(citus_db: CitusDb) -> None:
    upgrade = citus_db.revision.split("def downgrade")[0]
    folders = upgrade.index("op.distribute_tenant_table('folders')")
    notes = upgrade.index("op.distribute_tenant_table('notes')")
    assert upgrade.index("op.enable_tenant_isolation('folders')") < folders < notes


def test_every_shard_has_rls_forced_and_the_policy(citus_db: CitusDb) -> None:
    with citus_db.admin.connect() as conn:
        for table in ("tenants", "folders", "notes"):
            placements = placement_security(conn, table)
            assert len({p.node for p in placements}) == 2, placements  # both workers hold shards
            for placement in placements:
                assert placement.enabled and placement.forced, placement
                assert [p[0] for p in placement.policies] == [POLICY_NAME], placement


def test_a_child_before_its_parent_is_refused_with_the_parent_named(citus_db: CitusDb) -> None:
    with citus_db.admin.connect() as conn, conn.begin():
        conn.execute(
            text("CREATE TABLE early_parents (instance_id uuid, id bigint, PRIMARY KEY (instance_id, id))")
        )
        conn.execute(
            text(
                "CREATE TABLE early_children (instance_id uuid, id bigint, parent_id bigint,"
                " PRIMARY KEY (instance_id, id), FOREIGN KEY (instance_id, parent_id)"
                " REFERENCES early_parents (instance_id, id))"
            )
        )
        with pytest.raises(ConfigurationError, match="distribute early_parents before early_children"):
            distribute_tenant_table(conn, "early_children")
        assert distribute_tenant_table(conn, "early_parents")
        assert distribute_tenant_table(conn, "early_children")
        assert distributed_tables(conn)["early_children"] == "distributed"
        conn.rollback()


def test_undistribute_brings_a_table_back_to_the_coordinator(citus_db: CitusDb) -> None:
    with citus_db.admin.connect() as conn, conn.begin():
        conn.execute(
            text("CREATE TABLE scratch (instance_id uuid, id bigint, PRIMARY KEY (instance_id, id))")
        )
        conn.execute(text("INSERT INTO scratch VALUES (gen_random_uuid(), 1), (gen_random_uuid(), 2)"))
        assert distribute_tenant_table(conn, "scratch")
        assert undistribute_tenant_table(conn, "scratch")
        assert "scratch" not in distributed_tables(conn)
        assert conn.execute(text("SELECT count(*) FROM scratch")).scalar_one() == 2
        assert not undistribute_tenant_table(conn, "scratch")
        conn.rollback()
