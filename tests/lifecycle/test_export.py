"""Export on request: export_tenant writes JSON Lines per table and a manifest."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path

from sqlalchemy import Engine, text

from tenancy.lifecycle import export_tenant
from tests.lifecycle.schema import TABLES, counts, populate

A, B = uuid.UUID(int=0xA), uuid.UUID(int=0xB)


def test_export_writes_every_tenant_table_and_a_manifest_with_counts(admin: Engine, tmp_path: Path) -> None:
    with admin.begin() as conn:
        populate(conn, A)
        populate(conn, B, folders=1)
    with admin.connect() as conn:
        expected = counts(conn, A)

    manifest = export_tenant(admin, A, tmp_path / "out")

    written = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert written["instance_id"] == str(A) and written["format"] == "tenancy-export/1"
    assert (
        {name: t["rows"] for name, t in written["tables"].items()}
        == expected
        == {name: t["rows"] for name, t in manifest.tables.items()}
    )
    assert set(written["tables"]) == set(TABLES)
    assert written["tables"]["notes"]["columns"]["amount"] == "numeric(12,2)"
    for table in TABLES:
        lines = (tmp_path / "out" / f"{table}.jsonl").read_text().splitlines()
        rows = [json.loads(line) for line in lines]
        assert len(rows) == expected[table]
        assert {row["instance_id"] for row in rows} <= {str(A)}  # never another tenant's row
    note = json.loads((tmp_path / "out" / "notes.jsonl").read_text().splitlines()[0])
    assert note["amount"] == "12.34"  # exact decimal
    assert base64.b64decode(note["blob"]) == b"\x00\xff"
    assert note["meta"] == {"k": [1, 2]}
    assert "T" in note["created_at"] and note["created_at"].endswith("+00:00")
    folders = [json.loads(line) for line in (tmp_path / "out" / "folders.jsonl").read_text().splitlines()]
    assert [f["id"] for f in folders] == sorted(f["id"] for f in folders)  # primary-key order


def test_an_export_of_a_tenant_without_rows_is_a_manifest_of_zeros(admin: Engine, tmp_path: Path) -> None:
    manifest = export_tenant(admin, uuid.UUID(int=0xE), tmp_path)
    assert manifest.rows == 0 and set(manifest.tables) == set(TABLES)
    assert (tmp_path / "notes.jsonl").read_text() == ""


def test_a_rerun_replaces_the_previous_export(admin: Engine, tmp_path: Path) -> None:
    with admin.begin() as conn:
        populate(conn, A)
    export_tenant(admin, A, tmp_path)
    with admin.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE instance_id = :i"), {"i": A})
    assert export_tenant(admin, A, tmp_path).tables["audit_log"]["rows"] == 0
    assert (tmp_path / "audit_log.jsonl").read_text() == ""
