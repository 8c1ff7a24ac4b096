"""Writes (ISOLATION.md scenarios 25-42): a tenant session writes only its own rows.

ORM scenarios run on PostgreSQL and SQLite (``env``); the raw SQL halves run on PostgreSQL as
the runtime role, proving row-level security (``WITH CHECK``) and the composite keys alone.
"""

from __future__ import annotations

import re

import psycopg.errors
import pytest
from sqlalchemy import delete, insert, literal, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DBAPIError, IntegrityError

from tenancy import CrossTenantWrite, DuplicateInTenant
from tests.isolation.models import Folder, Note, Tag, note_tags
from tests.isolation.support import COUNTS, A, B, Env, count_statements


def sqlstate(exc: BaseException) -> str | None:
    """The PostgreSQL SQLSTATE behind a DBAPIError, or behind the tenancy error translated from one."""
    if isinstance(exc, DBAPIError):
        return getattr(exc.orig, "sqlstate", None)
    return getattr(exc.__cause__, "sqlstate", None)  # tenancy errors chain the driver's error


def stored(env: Env, sql: str, **params) -> object:
    """What is really stored (read as the owner, who sees every tenant)."""
    return env.owner_scalar(sql, **params)


def test_s25_new_object_without_tenant_is_stamped_and_column_has_no_default(env: Env) -> None:
    """Scenario 25: add(Note(...)) without instance_id is stamped with A; outside a session nothing fills it
    in.
    """
    with env.factory.for_instance(A) as session:
        note = Note(id=10, folder_id=1, title="new")
        session.add(note)
        assert note.instance_id == A
        session.commit()
    assert stored(env, "SELECT count(*) FROM iso_notes WHERE id = 10") == 1
    assert stored(env, "SELECT count(*) FROM iso_notes WHERE id = 10 AND instance_id = :a", a=A) == 1
    with pytest.raises(IntegrityError), env.owner.begin() as conn:  # no default, no server default
        conn.execute(text("INSERT INTO iso_notes (id, folder_id, title, body) VALUES (11, 1, 'orphan', '')"))


def test_s26_adding_object_of_other_tenant_raises_before_flush(env: Env) -> None:
    """Scenario 26: add(Note(instance_id=B)) in A's session raises at add(); a raw INSERT of B's id fails
    with 42501.
    """
    with env.factory.for_instance(A) as session, count_statements(env.engine) as statements:
        with pytest.raises(CrossTenantWrite):
            session.add(Note(instance_id=B, id=10, folder_id=1, title="sneaky"))
        assert statements == []  # refused before anything reached the database
        assert not session.new
        session.commit()
    assert stored(env, "SELECT count(*) FROM iso_notes WHERE id = 10") == 0
    if env.rls:
        with pytest.raises(CrossTenantWrite) as err, env.tenant_connection(A) as conn:
            conn.execute(
                text(
                    "INSERT INTO iso_notes (instance_id, id, folder_id, title, body)"
                    " VALUES (:b, 10, 1, 'x', '')"
                ),
                {"b": B},
            )
        assert sqlstate(err.value) == "42501"


def test_s27_orm_insert_statements_are_stamped_or_rejected(env: Env) -> None:
    """Scenario 27: ORM insert().values() / executemany without instance_id get A's; with B's they are
    refused.
    """
    with env.factory.for_instance(A) as session:
        session.execute(insert(Note).values(id=10, folder_id=1, title="one"))
        session.execute(
            insert(Note),
            [{"id": 11, "folder_id": 1, "title": "m1"}, {"id": 12, "folder_id": 1, "title": "m2"}],
        )
        session.execute(
            insert(Note).values(
                [{"id": 13, "folder_id": 1, "title": "v1"}, {"id": 14, "folder_id": 1, "title": "v2"}]
            )
        )
        session.execute(
            insert(Note).values(
                [
                    {Note.id: 15, Note.folder_id: 1, Note.title: "c1"},
                    {Note.instance_id: A, Note.id: 16, Note.folder_id: 1, Note.title: "c2"},
                ]
            )
        )
        for stmt, params in (
            (insert(Note).values(instance_id=B, id=20, folder_id=1, title="b"), None),
            (
                insert(Note),
                [
                    {"id": 21, "folder_id": 1, "title": "a"},
                    {"instance_id": B, "id": 22, "folder_id": 1, "title": "b"},
                ],
            ),
            (
                insert(Note).values(
                    [
                        {"id": 23, "folder_id": 1, "title": "a"},
                        {"instance_id": B, "id": 24, "folder_id": 1, "title": "b"},
                    ]
                ),
                None,
            ),
        ):
            with pytest.raises(CrossTenantWrite):
                session.execute(stmt, params)
        session.commit()
    assert stored(env, "SELECT count(*) FROM iso_notes WHERE id >= 10 AND instance_id = :a", a=A) == 7
    assert stored(env, "SELECT count(*) FROM iso_notes WHERE id >= 10") == 7
    if env.rls:
        with pytest.raises(CrossTenantWrite) as err, env.tenant_connection(A) as conn:
            conn.execute(insert(Note.__table__).values(instance_id=B, id=30, folder_id=1, title="core"))
        assert sqlstate(err.value) == "42501"


def test_s27_insert_from_select_copies_only_own_rows_into_own_tenant(env: Env) -> None:
    """Scenario 27: ORM insert().from_select() reads only A's rows and may only write A's instance_id."""
    copy = select(Note.instance_id, Note.id + 100, Note.folder_id, Note.title, Note.body)
    names = ["instance_id", "id", "folder_id", "title", "body"]
    with env.factory.for_instance(A) as session:
        session.execute(insert(Note).from_select(names, copy))
        stamped = select(literal(A), Note.id + 200, Note.folder_id, Note.title, Note.body).where(
            Note.id < 100
        )
        session.execute(insert(Note).from_select(names, stamped))
        for source in (
            select(literal(B), Note.id + 300, Note.folder_id, Note.title, Note.body),
            select(Tag.id, Note.id + 300, Note.folder_id, Note.title, Note.body).join(Tag, Tag.id == Note.id),
        ):
            with pytest.raises(CrossTenantWrite):
                session.execute(insert(Note).from_select(names, source))
        session.commit()
    assert stored(env, "SELECT count(*) FROM iso_notes WHERE id > 100 AND instance_id = :a", a=A) == 6
    assert stored(env, "SELECT count(*) FROM iso_notes WHERE id > 100") == 6
    assert stored(env, "SELECT count(*) FROM iso_notes WHERE body = 'b secret'") == 1


def test_s28_insert_without_tenant_context_fails(pg: Env) -> None:
    """Scenario 28: an INSERT on the runtime role with no tenant setting fails WITH CHECK (42501), for any
    id.
    """
    for tenant_value in (A, B):
        with pytest.raises(CrossTenantWrite) as err, pg.tenant_connection(None) as conn:
            conn.execute(
                insert(Note.__table__).values(instance_id=tenant_value, id=30, folder_id=1, title="x")
            )
        assert sqlstate(err.value) == "42501"
    with pytest.raises((IntegrityError, CrossTenantWrite)) as err, pg.tenant_connection(None) as conn:
        conn.execute(text("INSERT INTO iso_tags (id, label) VALUES (9, 'no tenant')"))
    assert sqlstate(err.value) in {"23502", "42501"}  # NOT NULL or WITH CHECK: never a default tenant
    assert pg.owner_scalar("SELECT count(*) FROM iso_tags WHERE id = 9") == 0
    with pg.tenant_connection(None) as conn:  # UPDATE and DELETE find nothing to touch
        assert conn.execute(text("UPDATE iso_notes SET body = 'no tenant'")).rowcount == 0
        assert conn.execute(text("DELETE FROM iso_notes")).rowcount == 0
    assert pg.owner_scalar("SELECT count(*) FROM iso_notes") == COUNTS[A]["notes"] + COUNTS[B]["notes"]


def test_s29_changing_instance_id_raises(env: Env) -> None:
    """Scenario 29: setting obj.instance_id = B on a loaded object raises at flush; a raw UPDATE to B fails
    with 42501.
    """
    with env.factory.for_instance(A) as session:
        note = session.get(Note, (A, 2))
        assert note is not None
        note.instance_id = B
        with pytest.raises(CrossTenantWrite):
            session.flush()
        session.rollback()
    assert stored(env, "SELECT count(*) FROM iso_notes WHERE instance_id = :b", b=B) == COUNTS[B]["notes"]
    if env.rls:
        with pytest.raises(CrossTenantWrite) as err, env.tenant_connection(A) as conn:
            conn.execute(text("UPDATE iso_tags SET instance_id = :b WHERE id = 1"), {"b": B})
        assert sqlstate(err.value) == "42501"


def test_s30_low_level_write_paths_cannot_retarget_or_touch_other_tenant(env: Env) -> None:
    """Scenario 30: Core update(table), bulk_update_mappings and bulk_save_objects cannot touch B or move
    rows to B.
    """
    with env.factory.for_instance(A) as session:
        with pytest.raises(CrossTenantWrite):
            session.bulk_update_mappings(Note, [{"instance_id": B, "id": 1, "title": "bulk"}])
        with pytest.raises(CrossTenantWrite):
            session.bulk_update_mappings(Note, [{"id": 4, "title": "bulk"}])
        with pytest.raises(CrossTenantWrite):
            session.bulk_save_objects([Note(instance_id=B, id=1, folder_id=1, title="bulk")])
        own = session.get(Note, (A, 1))
        assert own is not None
        own.instance_id = B
        with pytest.raises(CrossTenantWrite):
            session.bulk_save_objects([own])
        session.rollback()
        session.bulk_update_mappings(Note, [{"instance_id": A, "id": 1, "title": "bulk ok"}])
        session.commit()
    assert stored(env, "SELECT title FROM iso_notes WHERE instance_id = :a AND id = 1", a=A) == "bulk ok"
    assert stored(env, "SELECT count(*) FROM iso_notes WHERE title LIKE 'bulk%'") == 1
    if env.rls:
        table = Note.__table__
        with env.factory.for_instance(A) as session:
            conn = session.connection()
            assert conn.execute(update(table).where(table.c.id == 4).values(title="core")).rowcount == 0
            assert (
                conn.execute(update(table).where(table.c.instance_id == B).values(title="core")).rowcount == 0
            )
            with pytest.raises(CrossTenantWrite) as err:
                conn.execute(update(table).where(table.c.id == 1).values(instance_id=B))
            assert sqlstate(err.value) == "42501"
        assert stored(env, "SELECT count(*) FROM iso_notes WHERE title = 'core'") == 0


def test_s31_orm_update_without_where_updates_only_own_rows(env: Env) -> None:
    """Scenario 31: update(Note).values(...) with no WHERE updates A's rows only; rowcount is A's
    count.
    """
    with env.factory.for_instance(A) as session:
        result = session.execute(update(Note).values(body="mass"))
        assert result.rowcount == COUNTS[A]["notes"]
        session.commit()
    assert stored(env, "SELECT count(*) FROM iso_notes WHERE body = 'mass'") == COUNTS[A]["notes"]
    if env.rls:
        with env.tenant_connection(B) as conn:
            assert conn.execute(text("UPDATE iso_notes SET body = 'raw mass'")).rowcount == COUNTS[B]["notes"]
        assert stored(env, "SELECT count(*) FROM iso_notes WHERE body = 'mass'") == COUNTS[A]["notes"]


def test_s31_update_from_another_table_is_steered_only_by_own_rows(env: Env) -> None:
    """Scenario 31: update(Note).where(Note.id == Tag.id) (UPDATE ... FROM) only matches A's tags and
    notes.
    """
    with env.factory.for_instance(A) as session:
        green = update(Note).where(Note.id == Tag.id).where(Tag.label == "green").values(body="green")
        green = green.execution_options(synchronize_session=False)
        assert session.execute(green).rowcount == 0  # only B has a green tag (id 3); A has a note 3
        link = (
            update(Note)
            .where(Note.id == note_tags.c.note_id)
            .where(note_tags.c.tag_id == 3)
            .values(body="linked")
            .execution_options(synchronize_session=False)
        )
        assert session.execute(link).rowcount == 0  # B's link (4, 3): the Core table is scoped too
        red = update(Note).where(Note.id == Tag.id).where(Tag.label == "red").values(body="red")
        assert session.execute(red.execution_options(synchronize_session=False)).rowcount == 1
        session.commit()
    assert stored(env, "SELECT count(*) FROM iso_notes WHERE body IN ('green', 'linked')") == 0
    assert stored(env, "SELECT count(*) FROM iso_notes WHERE body = 'red'") == 1


def test_s32_delete_using_another_table_is_steered_only_by_own_rows(pg: Env) -> None:
    """Scenario 32: delete(Note).where(Note.id == Tag.id) (DELETE ... USING) only matches A's rows."""
    with pg.factory.for_instance(A) as session:
        green = delete(Note).where(Note.id == Tag.id).where(Tag.label == "green")
        assert session.execute(green.execution_options(synchronize_session=False)).rowcount == 0
        session.commit()
    assert stored(pg, "SELECT count(*) FROM iso_notes") == COUNTS[A]["notes"] + COUNTS[B]["notes"]


def test_s32_orm_delete_without_where_deletes_only_own_rows(env: Env) -> None:
    """Scenario 32: delete(Note) with no WHERE deletes A's rows only."""
    with env.factory.for_instance(A) as session:
        assert session.execute(delete(Note)).rowcount == COUNTS[A]["notes"]
        session.commit()
    assert stored(env, "SELECT count(*) FROM iso_notes") == COUNTS[B]["notes"]
    if env.rls:
        with env.tenant_connection(A) as conn:
            assert conn.execute(text("DELETE FROM iso_tags")).rowcount == COUNTS[A]["tags"]
        assert stored(env, "SELECT count(*) FROM iso_tags") == COUNTS[B]["tags"]


def test_s33_orm_bulk_update_by_primary_key_cannot_touch_other_tenant(env: Env) -> None:
    """Scenario 33: execute(update(Note), [{B's pk}]) is refused by the guard; the same by RLS alone changes
    0 rows.
    """
    with env.factory.for_instance(A) as session:
        with pytest.raises(CrossTenantWrite):
            session.execute(update(Note), [{"instance_id": B, "id": 1, "title": "bulk pk"}])
        with pytest.raises(CrossTenantWrite):
            session.execute(update(Note), [{"id": 4, "title": "bulk pk"}])
        with pytest.raises(CrossTenantWrite):
            session.execute(
                update(Note),
                [{"instance_id": A, "id": 1, "title": "bulk pk"}, {"instance_id": B, "id": 2, "title": "x"}],
            )
        session.execute(update(Note), [{"instance_id": A, "id": 1, "title": "bulk pk"}])
        session.commit()
    assert stored(env, "SELECT count(*) FROM iso_notes WHERE title = 'bulk pk'") == 1
    if env.rls:
        table = Note.__table__
        stmt = update(table).where(table.c.instance_id == B).where(table.c.id == 1).values(title="raw pk")
        with env.tenant_connection(A) as conn:
            assert conn.execute(stmt).rowcount == 0
        assert stored(env, "SELECT count(*) FROM iso_notes WHERE title = 'raw pk'") == 0


def test_s34_core_update_and_delete_through_session_connection_touch_only_own_rows(pg: Env) -> None:
    """Scenario 34: Core update()/delete() through session.connection() touch only A's rows (RLS)."""
    notes, tags = Note.__table__, Tag.__table__
    with pg.factory.for_instance(A) as session:
        conn = session.connection()
        assert conn.execute(update(notes).values(body="core")).rowcount == COUNTS[A]["notes"]
        assert conn.execute(delete(tags).where(tags.c.label == "green")).rowcount == 0
        assert conn.execute(delete(note_tags)).rowcount == COUNTS[A]["links"]
        session.commit()
    assert pg.owner_scalar("SELECT count(*) FROM iso_notes WHERE body = 'core'") == COUNTS[A]["notes"]
    assert pg.owner_scalar("SELECT count(*) FROM iso_note_tags") == COUNTS[B]["links"]
    assert pg.owner_scalar("SELECT count(*) FROM iso_tags WHERE label = 'green'") == 1


def test_s35_cascade_deletes_remove_only_own_children(env: Env) -> None:
    """Scenario 35: ORM cascade and ON DELETE CASCADE remove only A's children, never B's same-id ones."""
    with env.factory.for_instance(A) as session:
        folder = session.get(Folder, (A, 2))
        assert folder is not None
        session.delete(folder)  # ORM cascade: its notes
        session.commit()
    assert stored(env, "SELECT count(*) FROM iso_notes WHERE folder_id = 2") == 1  # B's note 3
    assert stored(env, "SELECT count(*) FROM iso_folders WHERE id = 2") == 1
    if env.rls:
        with env.tenant_connection(A) as conn:  # database cascade: folders -> notes -> note_tags
            assert conn.execute(text("DELETE FROM iso_folders WHERE id = 1")).rowcount == 1
        assert stored(env, "SELECT count(*) FROM iso_folders WHERE instance_id = :a", a=A) == 0
        assert stored(env, "SELECT count(*) FROM iso_notes WHERE instance_id = :a", a=A) == 0
        assert stored(env, "SELECT count(*) FROM iso_note_tags WHERE instance_id = :a", a=A) == 0
        assert stored(env, "SELECT count(*) FROM iso_notes WHERE instance_id = :b", b=B) == COUNTS[B]["notes"]
        assert (
            stored(env, "SELECT count(*) FROM iso_note_tags WHERE instance_id = :b", b=B)
            == COUNTS[B]["links"]
        )


def test_s36_upsert_colliding_with_other_tenant_row_neither_updates_nor_reveals_it(pg: Env) -> None:
    """Scenario 36: INSERT ... ON CONFLICT DO UPDATE on B's key never updates B's row; with B's id it fails
    with 42501.
    """
    with pg.factory.for_instance(A) as session:
        # id 4 exists only in B: the key is (instance_id, id), so A's upsert inserts A's own row.
        stmt = pg_insert(Note).values(id=4, folder_id=1, title="upsert")
        stmt = stmt.on_conflict_do_update(
            index_elements=["instance_id", "id"], set_={"title": "upsert (updated)"}
        )
        session.execute(stmt)
        with pytest.raises(CrossTenantWrite):
            session.execute(
                pg_insert(Note)
                .values(instance_id=B, id=4, folder_id=1, title="upsert")
                .on_conflict_do_update(index_elements=["instance_id", "id"], set_={"title": "pwned"})
            )
        session.commit()
    assert pg.owner_scalar("SELECT title FROM iso_notes WHERE instance_id = :a AND id = 4", a=A) == "upsert"
    assert pg.owner_scalar("SELECT title FROM iso_notes WHERE instance_id = :b AND id = 4", b=B) == "Extra"
    raw = text(
        "INSERT INTO iso_notes (instance_id, id, folder_id, title, body) VALUES (:b, 4, 1, 'x', '') "
        "ON CONFLICT (instance_id, id) DO UPDATE SET title = 'pwned' RETURNING body"
    )
    with pytest.raises(CrossTenantWrite) as err, pg.tenant_connection(A) as conn:
        conn.execute(raw, {"b": B})
    assert sqlstate(err.value) == "42501"
    assert "b secret" not in str(err.value) and "Extra" not in str(err.value)
    assert pg.owner_scalar("SELECT title FROM iso_notes WHERE instance_id = :b AND id = 4", b=B) == "Extra"


def test_s37_merge_cannot_overwrite_other_tenant_and_get_or_create_stays_in_tenant(env: Env) -> None:
    """Scenario 37: merge() of a detached B object never writes B's row; get-or-create finds A's or stamps
    A.
    """
    with env.factory.admin(reason="test s37") as admin:
        b_note = admin.get(Note, (B, 1))
        assert b_note is not None
        admin.expunge_all()
    b_note.title = "pwned by merge"
    with env.factory.for_instance(A) as session:
        with pytest.raises(CrossTenantWrite):
            session.merge(b_note)
            session.flush()
        session.rollback()
        assert session.merge(Note(instance_id=A, id=1, folder_id=1, title="merged")).instance_id == A
        assert session.merge(Note(id=99, folder_id=1, title="new via merge")).instance_id == A
        session.commit()
    assert stored(env, "SELECT title FROM iso_notes WHERE instance_id = :b AND id = 1", b=B) == "Hello"
    assert stored(env, "SELECT title FROM iso_notes WHERE instance_id = :a AND id = 1", a=A) == "merged"

    def get_or_create(session, slug: str) -> Folder:
        found = session.scalars(select(Folder).where(Folder.slug == slug)).one_or_none()
        if found is None:
            found = Folder(id=50, slug=slug, name=slug)
            session.add(found)
        return found

    with env.factory.for_instance(A) as session:
        inbox = get_or_create(session, "inbox")
        assert (inbox.instance_id, inbox.id) == (A, 1)
        created = get_or_create(session, "b-only")  # B has it; A does not: created in A
        session.commit()
        assert created.instance_id == A
    assert stored(env, "SELECT count(*) FROM iso_folders WHERE slug = 'b-only'") == 2


def test_s38_mixed_batches_are_rejected_whole(env: Env) -> None:
    """Scenario 38: add_all() / bulk_save_objects() with one B object among A's reject the whole batch."""
    with env.factory.for_instance(A) as session:
        batch = [Tag(id=10, label="a1"), Tag(instance_id=B, id=11, label="b1"), Tag(id=12, label="a2")]
        with pytest.raises(CrossTenantWrite):
            session.add_all(batch)
        assert not session.new
        with pytest.raises(CrossTenantWrite):
            session.bulk_save_objects([Tag(id=13, label="a3"), Tag(instance_id=B, id=14, label="b2")])
        with pytest.raises(CrossTenantWrite):
            session.bulk_insert_mappings(
                Tag, [{"id": 15, "label": "a4"}, {"instance_id": B, "id": 16, "label": "b3"}]
            )
        session.commit()
    assert stored(env, "SELECT count(*) FROM iso_tags WHERE id >= 10") == 0


def test_s39_linking_own_object_to_other_tenant_through_association_is_rejected(env: Env) -> None:
    """Scenario 39: an A note cannot be tagged with a B tag (guard), and the link row is refused by the
    DB.
    """
    with env.factory.for_instance(A) as session:
        note = session.get(Note, (A, 1))
        assert note is not None
        with pytest.raises(CrossTenantWrite):  # the cascade adds the B tag to the session
            note.tags.append(Tag(instance_id=B, id=3, label="green"))
            session.flush()
        session.rollback()
    assert stored(env, "SELECT count(*) FROM iso_note_tags") == COUNTS[A]["links"] + COUNTS[B]["links"]
    if env.rls:
        with pytest.raises(IntegrityError) as err, env.tenant_connection(A) as conn:
            # Tag 3 exists only in B: the composite FK (instance_id, tag_id) cannot reach it.
            conn.execute(insert(note_tags).values(instance_id=A, note_id=1, tag_id=3))
        assert sqlstate(err.value) == "23503"
        with pytest.raises(CrossTenantWrite) as err, env.tenant_connection(A) as conn:
            conn.execute(insert(note_tags).values(instance_id=B, note_id=1, tag_id=3))
        assert sqlstate(err.value) == "42501"


def test_s40_composite_fk_rejects_child_of_a_pointing_at_parent_of_b(pg: Env) -> None:
    """Scenario 40: the composite FK refuses an A note in B's folder 3, even for the owner who bypasses
    RLS.
    """
    for engine in (pg.owner, pg.engine):
        with pytest.raises(IntegrityError) as err, engine.begin() as conn:
            conn.execute(
                text(
                    "SELECT set_config('tenancy.instance_id', :a, true), set_config('tenancy.seal', :s, true)"
                ),
                {"a": str(A), "s": pg.seal(A)},
            )
            conn.execute(insert(Note.__table__).values(instance_id=A, id=40, folder_id=3, title="x"))
        assert isinstance(err.value.orig, psycopg.errors.ForeignKeyViolation)
    with pg.factory.for_instance(A) as session:
        session.add(Note(id=40, folder_id=3, title="orm"))
        with pytest.raises(IntegrityError):
            session.flush()


def _shape(exc: BaseException) -> str:
    # The error text with the key values blanked: what an attacker could compare.
    return re.sub(r"\d+", "N", str(getattr(exc, "orig", exc)).split("\n")[0])


def test_s41_fk_and_unique_errors_are_no_existence_oracle(pg: Env) -> None:
    """Scenario 41: B's rows change no error A can observe: FK to B-only id fails like a missing id; B-only
    slug is free.
    """
    errors = []
    for folder_id in (3, 999):  # 3 exists only in B, 999 nowhere
        with pytest.raises(IntegrityError) as err, pg.factory.for_instance(A) as session:
            session.add(Note(id=41, folder_id=folder_id, title="probe"))
            session.flush()
        errors.append((sqlstate(err.value), _shape(err.value)))
    assert errors[0] == errors[1]
    with pg.factory.for_instance(A) as session:
        session.add(Folder(id=41, slug="b-only", name="mine now"))  # B's unique slug: no collision
        session.add(Tag(id=41, label="green"))
        session.commit()


def test_s42_slug_unique_per_tenant_duplicate_inside_tenant_raises(env: Env) -> None:
    """Scenario 42: the same slug is fine in A and B; a duplicate inside A raises from the DB
    constraint.
    """
    with env.factory.for_instance(A) as session:
        session.add(Folder(id=42, slug="inbox", name="dup"))
        # The per-tenant unique constraint refuses it, as tenancy's domain error.
        with pytest.raises(DuplicateInTenant) as err:
            session.flush()
        if env.rls:
            assert sqlstate(err.value) == "23505"
    assert stored(env, "SELECT count(*) FROM iso_folders WHERE slug = 'inbox'") == 2
