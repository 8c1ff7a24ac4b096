"""Export: a tenant's rows of every tenant table, as JSON Lines, streamed.

``export_tenant(engine, instance_id, directory)`` writes ``<table>.jsonl`` (one JSON object per
row, columns by name, in primary-key order) for every tenant table, then ``manifest.json``:
instance id, ``exported_at``, and per table its file, row count and columns with their
PostgreSQL types. The manifest is written last: a directory without one is an export that did
not finish. A directory of plain files, not an archive: each file can be read, grepped or loaded
on its own, and the writer needs no buffering; ``tar`` or ``zip`` it to hand it over.

Rows come through a server-side cursor (``stream_results``, a batch at a time): memory stays
flat however large the tenant. Values: UUIDs as strings, dates and times in ISO 8601, decimals
as strings (exact), bytes as base64, intervals as seconds, JSON as JSON; other values as text.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from tenancy.lifecycle.tables import discover

__all__ = ["MANIFEST", "ExportManifest", "export_tenant", "json_value"]

MANIFEST = "manifest.json"
_BATCH = 1000


@dataclass(frozen=True)
class ExportManifest:
    """What an export wrote (the content of ``manifest.json``)."""

    instance_id: uuid.UUID
    exported_at: dt.datetime
    directory: Path
    tables: dict[str, dict[str, Any]]

    @property
    def rows(self) -> int:
        """Rows over all tables."""
        return sum(int(t["rows"]) for t in self.tables.values())

    def to_json(self) -> str:
        """The manifest as JSON."""
        return json.dumps(
            {
                "format": "tenancy-export/1",
                "instance_id": str(self.instance_id),
                "exported_at": self.exported_at.isoformat(),
                "tables": self.tables,
            },
            indent=2,
            sort_keys=True,
        )


def json_value(value: Any) -> Any:
    """A database value as JSON (``json.dumps(default=...)``): see the module doc."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return str(value)


def export_tenant(
    engine: Engine,
    instance_id: uuid.UUID,
    directory: str | os.PathLike[str],
    *,
    schema: str = "public",
    on_table: Callable[[str, int], None] | None = None,
) -> ExportManifest:
    """Write the tenant's rows of every tenant table under *directory* (created if needed) on
    the admin *engine*; returns the manifest. *on_table(table, rows)* after each table."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)  # an export in progress has no manifest
    exported_at = dt.datetime.now(dt.UTC)
    tables: dict[str, dict[str, Any]] = {}
    with engine.connect() as conn:
        found = discover(conn, schema=schema)
    with engine.connect() as conn:
        # One snapshot for every table: the files agree with each other (references resolve).
        conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
        for table in found.insert_order:
            order = ", ".join(f'"{name}"' for name in table.primary_key) or "ctid"
            query = text(f"SELECT * FROM {table.qualified} WHERE instance_id = :iid ORDER BY {order}")
            path = out / f"{table.name}.jsonl"
            rows = 0
            result = conn.execution_options(stream_results=True, yield_per=_BATCH).execute(
                query, {"iid": instance_id}
            )
            with path.open("w", encoding="utf-8") as fh:
                keys = list(result.keys())
                for partition in result.partitions(_BATCH):
                    fh.write(
                        "".join(
                            json.dumps(
                                dict(zip(keys, row, strict=True)), default=json_value, ensure_ascii=False
                            )
                            + "\n"
                            for row in partition
                        )
                    )
                    rows += len(partition)
            tables[table.name] = {
                "file": path.name,
                "rows": rows,
                "columns": {col.name: col.type for col in table.columns},
            }
            if on_table is not None:
                on_table(table.name, rows)
        conn.rollback()
    manifest = ExportManifest(instance_id=instance_id, exported_at=exported_at, directory=out, tables=tables)
    tmp = out / (MANIFEST + ".tmp")
    tmp.write_text(manifest.to_json() + "\n", encoding="utf-8")
    tmp.replace(out / MANIFEST)
    return manifest
