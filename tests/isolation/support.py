"""Tenants, seed data and small helpers shared by the isolation battery."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, delete, event, insert, text

from tenancy import TenantSessionFactory
from tenancy.postgres.binding import BindingKey
from tests.isolation.models import Folder, Item, Note, Tag, note_tags

A = uuid.UUID("aaaaaaaa-0000-4000-8000-00000000000a")
B = uuid.UUID("bbbbbbbb-0000-4000-8000-00000000000b")

# Identical-looking data in both tenants; B has one extra row per table so counts differ
# (A: 2 folders, 3 notes, 2 tags, 2 links; B: 3, 4, 3, 3).
FOLDERS = [
    {"id": 1, "slug": "inbox", "name": "Inbox", "parent_id": None},
    {"id": 2, "slug": "archive", "name": "Archive", "parent_id": 1},
]
NOTES = [
    {"id": 1, "folder_id": 1, "title": "Hello", "body": "same body"},
    {"id": 2, "folder_id": 1, "title": "Shopping", "body": "same body"},
    {"id": 3, "folder_id": 2, "title": "Old", "body": "same body"},
]
TAGS = [{"id": 1, "label": "red"}, {"id": 2, "label": "blue"}]
LINKS = [{"note_id": 1, "tag_id": 1}, {"note_id": 2, "tag_id": 2}]
ITEMS = [{"id": 1, "kind": "task", "title": "Do"}, {"id": 2, "kind": "event", "title": "Meet"}]
B_ONLY = {
    Folder: [{"id": 3, "slug": "b-only", "name": "Only B", "parent_id": None}],
    Note: [{"id": 4, "folder_id": 1, "title": "Extra", "body": "b secret"}],
    Tag: [{"id": 3, "label": "green"}],
}
B_ONLY_LINKS = [{"note_id": 4, "tag_id": 3}]
COUNTS = {
    A: {"folders": 2, "notes": 3, "tags": 2, "links": 2},
    B: {"folders": 3, "notes": 4, "tags": 3, "links": 3},
}


def seed(connection: Connection) -> None:
    """Empty the battery's tables and insert tenants A and B (as a role that bypasses RLS)."""
    for table in (note_tags, Note.__table__, Tag.__table__, Item.__table__, Folder.__table__):
        connection.execute(delete(table))
    for tenant in (A, B):
        extra: dict[Any, list[dict[str, Any]]] = B_ONLY if tenant == B else {}
        links = LINKS + (B_ONLY_LINKS if tenant == B else [])
        for model, rows in ((Folder, FOLDERS), (Note, NOTES), (Tag, TAGS), (Item, ITEMS)):
            all_rows = [{**row, "instance_id": tenant} for row in rows + extra.get(model, [])]
            connection.execute(insert(model.__table__), all_rows)
        connection.execute(insert(note_tags), [{**row, "instance_id": tenant} for row in links])


@dataclass
class Env:
    """One backend under test: the runtime engine, the owner engine and a factory on them."""

    name: str
    engine: Engine  # runtime role on PostgreSQL
    owner: Engine  # owner role (BYPASSRLS) on PostgreSQL; the same file on SQLite
    factory: TenantSessionFactory
    runtime_role: str = ""
    owner_role: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rls(self) -> bool:
        """Whether the database layer (row-level security) is there to prove as well."""
        return self.name == "postgresql"

    @contextmanager
    def tenant_connection(self, tenant: uuid.UUID | str | None) -> Iterator[Connection]:
        """A runtime-role connection in a transaction with the sealed binding (or none), no ORM."""
        with self.engine.connect() as conn, conn.begin():
            if tenant is not None:
                conn.execute(
                    text(
                        "SELECT set_config('tenancy.instance_id', :t, true),"
                        " set_config('tenancy.seal', :s, true)"
                    ),
                    {"t": str(tenant), "s": self.seal(tenant)},
                )
            yield conn

    @property
    def key(self) -> BindingKey:
        """The binding key the application holds (read once through the owner engine)."""
        return self.factory._keys.key()

    def seal(self, tenant: uuid.UUID | str) -> str:
        """The seal the application computes for *tenant* (the factory's binding key)."""
        return self.factory._keys.seal(uuid.UUID(str(tenant)))

    def _params(self, params: dict[str, Any]) -> dict[str, Any]:
        # SQLite stores UUIDs as 32 hex digits; raw SQL there must bind them the same way.
        if self.rls:
            return params
        return {k: v.hex if isinstance(v, uuid.UUID) else v for k, v in params.items()}

    def owner_scalar(self, sql: str, **params: Any) -> Any:
        """Run *sql* as the owner (sees every tenant) and return the scalar result."""
        with self.owner.connect() as conn:
            return conn.execute(text(sql), self._params(params)).scalar()

    def owner_execute(self, sql: str, **params: Any) -> int:
        """Run and commit *sql* as the owner; return the row count."""
        with self.owner.begin() as conn:
            return conn.execute(text(sql), self._params(params)).rowcount


@contextmanager
def count_statements(engine: Engine) -> Iterator[list[str]]:
    """Collect every SQL statement *engine* sends while the block runs."""
    seen: list[str] = []

    def listener(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", listener)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", listener)
