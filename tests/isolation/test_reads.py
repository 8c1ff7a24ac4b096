"""Reads (ISOLATION.md scenarios 1-24): a tenant session only ever sees its own rows.

Each ORM scenario runs on PostgreSQL and SQLite (``env``); on SQLite the ORM guard is the only
layer, so passing there proves it alone. On PostgreSQL the same query is also run as raw SQL
on the runtime role with the tenant setting (``env.tenant_connection``), which proves
row-level security alone.
"""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import String, create_engine, delete, exists, func, select, text, true, union_all, update
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.orm import (
    aliased,
    contains_eager,
    joinedload,
    selectin_polymorphic,
    selectinload,
    subqueryload,
    with_loader_criteria,
    with_polymorphic,
)
from sqlalchemy.orm.exc import DetachedInstanceError

from tenancy import CrossTenantAccess
from tests.isolation.models import Event, Folder, Item, Note, Tag, Task, note_tags
from tests.isolation.support import COUNTS, A, B, Env


def rls_count(env: Env, tenant, sql: str) -> int:
    """Count rows of *sql* run raw as the runtime role with *tenant* set (RLS alone)."""
    with env.tenant_connection(tenant) as conn:
        return conn.execute(text(f"SELECT count(*) FROM ({sql}) AS q")).scalar_one()


def test_s01_select_returns_only_own_rows(env: Env) -> None:
    """Scenario 1: select(Model) in A's session returns only A's rows (and B's only B's)."""
    for tenant in (A, B):
        with env.factory.for_instance(tenant) as session:
            notes = session.scalars(select(Note)).unique().all()
            assert {n.instance_id for n in notes} == {tenant}
            assert len(notes) == COUNTS[tenant]["notes"]
            # A caller's own loader criteria add to the tenant's, they never replace them.
            widened = select(Note).options(with_loader_criteria(Note, true()))
            assert len(session.scalars(widened).unique().all()) == COUNTS[tenant]["notes"]
            assert session.query(Note).count() == COUNTS[tenant]["notes"]
    if env.rls:
        assert rls_count(env, A, "SELECT * FROM iso_notes") == COUNTS[A]["notes"]
        assert rls_count(env, B, "SELECT * FROM iso_notes") == COUNTS[B]["notes"]


def test_s02_get_foreign_pk_on_fresh_session_returns_none(env: Env) -> None:
    """Scenario 2: Session.get() with B's primary key on a fresh A session returns None."""
    with env.factory.for_instance(A) as session:
        assert session.get(Note, (B, 1)) is None
        assert session.get(Note, (B, 4)) is None
        assert session.get(Folder, (B, 3)) is None
    if env.rls:
        assert rls_count(env, A, f"SELECT * FROM iso_notes WHERE instance_id = '{B}'") == 0


def test_s03_get_after_foreign_object_entered_session_never_returns_it(env: Env) -> None:
    """Scenario 3: B's object cannot enter A's identity map, so get(B's pk) never returns it."""
    with env.factory.admin(reason="test s03") as admin:
        b_note = admin.get(Note, (B, 1))
        assert b_note is not None
        admin.expunge(b_note.folder)
        admin.expunge(b_note)
    with env.factory.for_instance(A) as session:
        with pytest.raises(CrossTenantAccess):
            session.add(b_note)
        with pytest.raises(CrossTenantAccess):
            session.merge(b_note, load=False)
        assert session.get(Note, (B, 1)) is None
        assert b_note not in session
        assert all(obj.instance_id == A for obj in session.identity_map.values())


def test_s04_same_pk_in_both_tenants_get_returns_own(env: Env) -> None:
    """Scenario 4: with (A, 1) and (B, 1) stored, get() returns A's and an update by id touches only
    A's.
    """
    with env.factory.for_instance(A) as session:
        note = session.get(Note, (A, 1))
        assert note is not None and note.instance_id == A
        result = session.execute(update(Note).where(Note.id == 1).values(title="changed"))
        assert result.rowcount == 1
        session.commit()
    assert env.owner_scalar("SELECT title FROM iso_notes WHERE instance_id = :t AND id = 1", t=B) == "Hello"
    assert env.owner_scalar("SELECT title FROM iso_notes WHERE instance_id = :t AND id = 1", t=A) == "changed"
    if env.rls:
        with env.tenant_connection(A) as conn:
            assert conn.execute(text("UPDATE iso_notes SET body = 'raw' WHERE id = 2")).rowcount == 1
        assert (
            env.owner_scalar("SELECT body FROM iso_notes WHERE instance_id = :t AND id = 2", t=B)
            == "same body"
        )


def test_s05_lookup_by_value_present_in_both_returns_own(env: Env) -> None:
    """Scenario 5: where(slug='inbox'), present in A and B, returns A's row only."""
    with env.factory.for_instance(A) as session:
        folder = session.scalars(select(Folder).where(Folder.slug == "inbox")).one()
        assert folder.instance_id == A
    if env.rls:
        assert rls_count(env, A, "SELECT * FROM iso_folders WHERE slug = 'inbox'") == 1


def test_s06_same_statement_as_a_then_b_then_a(env: Env) -> None:
    """Scenario 6: one statement object executed as A, B, A returns A's, B's, A's rows (no stale
    tenant).
    """
    stmt = select(Note.instance_id, func.count()).group_by(Note.instance_id)
    raw = text("SELECT instance_id, count(*) FROM iso_notes GROUP BY instance_id")
    for tenant in (A, B, A, B, A):
        with env.factory.for_instance(tenant) as session:
            assert session.execute(stmt).all() == [(tenant, COUNTS[tenant]["notes"])]
        if env.rls:
            with env.tenant_connection(tenant) as conn:
                assert [tuple(r) for r in conn.execute(raw)] == [(tenant, COUNTS[tenant]["notes"])]


def test_s07_prepared_statements_and_compiled_cache_a_b_a(pg: Env, iso_database) -> None:
    """Scenario 7: with server-side prepared statements and the compiled cache, A, B, A still gets A,
    B, A.
    """
    from tenancy import TenantSessionFactory

    engine = create_engine(
        iso_database.runtime_url, pool_size=1, max_overflow=0, connect_args={"prepare_threshold": 0}
    )
    cache: dict = {}
    try:
        factory = TenantSessionFactory(engine.execution_options(compiled_cache=cache), binding_key=pg.key)
        stmt = select(Note.instance_id, Note.title).where(Note.id == 1)
        raw = text("SELECT instance_id, count(*) FROM iso_notes GROUP BY instance_id")
        for tenant in (A, B, A, B, A):
            with factory.for_instance(tenant) as session:
                assert session.execute(stmt).all() == [(tenant, "Hello")]
                assert session.execute(raw).all() == [(tenant, COUNTS[tenant]["notes"])]
                prepared = session.execute(text("SELECT count(*) FROM pg_prepared_statements")).scalar_one()
                assert prepared > 0  # the driver really prepared them on the server
        # One compiled form served every tenant: the tenant is a bound parameter, not a literal.
        selects = [key for key in cache if "iso_notes" in str(key) and "selectable.Select" in str(key)]
        assert len(selects) == 1
    finally:
        engine.dispose()


def test_s08_one_to_many_lazy_load_returns_own_children(env: Env) -> None:
    """Scenario 8: A's folder 1 lazy-loads A's notes only, not B's notes with folder_id 1 (even on an id-
    only join).
    """
    with env.factory.for_instance(A) as session:
        folder = session.get(Folder, (A, 1))
        assert folder is not None
        assert [(n.instance_id, n.id) for n in folder.notes] == [(A, 1), (A, 2)]
        assert [(n.instance_id, n.id) for n in folder.loose_notes] == [(A, 1), (A, 2)]
    if env.rls:
        assert rls_count(env, A, "SELECT * FROM iso_notes WHERE folder_id = 1") == 2


@pytest.mark.parametrize("loader", ["joinedload", "selectinload", "subqueryload", "lazy_joined"])
def test_s09_eager_loaders_return_only_own_children(env: Env, loader: str) -> None:
    """Scenario 9: lazy="joined", joinedload(), selectinload() and subqueryload() each return only A's
    rows.
    """
    with env.factory.for_instance(A) as session:
        if loader == "lazy_joined":
            notes = session.scalars(select(Note).order_by(Note.id)).unique().all()
            assert {(n.folder.instance_id, n.folder.id) for n in notes} == {(A, 1), (A, 2)}
            return
        option = {"joinedload": joinedload, "selectinload": selectinload, "subqueryload": subqueryload}[
            loader
        ]
        folders = (
            session.scalars(
                select(Folder).options(option(Folder.loose_notes), option(Folder.notes)).order_by(Folder.id)
            )
            .unique()
            .all()
        )
        assert [(f.instance_id, f.id) for f in folders] == [(A, 1), (A, 2)]
        assert [[n.id for n in f.loose_notes] for f in folders] == [[1, 2], [3]]
        assert [[n.id for n in f.notes] for f in folders] == [[1, 2], [3]]
        assert {n.instance_id for f in folders for n in f.loose_notes} == {A}
        session.expunge_all()
        narrowed = option(Folder.loose_notes.and_(Note.id > 0))  # a caller's extra ON criteria
        folders = session.scalars(select(Folder).options(narrowed).order_by(Folder.id)).unique().all()
        assert [[(n.instance_id, n.id) for n in f.loose_notes] for f in folders] == [
            [(A, 1), (A, 2)],
            [(A, 3)],
        ]


def test_s09_contains_eager_over_an_id_only_join_is_filtered(env: Env) -> None:
    """Scenario 9: contains_eager() over a join on id alone fills A's folders with A's notes only."""
    with env.factory.for_instance(A) as session:
        stmt = (
            select(Folder)
            .join(Note, Note.folder_id == Folder.id)
            .options(contains_eager(Folder.loose_notes))
            .order_by(Folder.id, Note.id)
        )
        folders = session.scalars(stmt).unique().all()
        assert [[(n.instance_id, n.id) for n in f.loose_notes] for f in folders] == [
            [(A, 1), (A, 2)],
            [(A, 3)],
        ]


def test_s10_many_to_one_from_own_child_never_reaches_foreign_parent(env: Env) -> None:
    """Scenario 10: A's child resolves its parent within A; a B parent is never returned (nor can it join
    A's map).
    """
    with env.factory.admin(reason="test s10") as admin:
        b_folder = admin.get(Folder, (B, 1))
        admin.expunge_all()
    with env.factory.for_instance(A) as session:
        with pytest.raises(CrossTenantAccess):
            session.add(b_folder)
        note = session.scalars(select(Note).where(Note.id == 1)).unique().one()
        session.expire(note, ["folder"])
        assert (note.folder.instance_id, note.folder.id) == (A, 1)
        loose = note.loose_folder  # SQL on id alone: A's and B's folder 1 both match it
        assert loose is not None and (loose.instance_id, loose.id) == (A, 1)
        child = session.get(Folder, (A, 2))
        assert child is not None and child.parent is not None
        assert (child.parent.instance_id, child.parent.id) == (A, 1)
    if env.rls:
        # B's folder 3 is invisible to A, so even a hand-written lookup by id finds nothing.
        assert rls_count(env, A, "SELECT * FROM iso_folders WHERE id = 3") == 0


def test_s11_object_of_a_cannot_be_used_from_a_session_of_b(env: Env) -> None:
    """Scenario 11: A's object used from B's session raises (detached or foreign), never loads B-scoped or
    unscoped.
    """
    with env.factory.for_instance(A) as session_a:
        folder = session_a.get(Folder, (A, 1))
        assert folder is not None
    with pytest.raises(DetachedInstanceError):
        _ = folder.notes  # detached: no lazy load at all
    with env.factory.for_instance(B) as session_b:
        with pytest.raises(CrossTenantAccess):
            session_b.add(folder)
        assert folder not in session_b
    with pytest.raises(DetachedInstanceError):
        _ = folder.notes
    folder.instance_id = B  # re-tenanted while detached: its identity key still says A
    with env.factory.for_instance(B) as session_b:
        with pytest.raises(CrossTenantAccess):
            session_b.add(folder)
        assert session_b.get(Folder, (A, 1)) is None


def test_s12_many_to_many_association_rows_are_scoped(env: Env) -> None:
    """Scenario 12: association rows of B are invisible to A, and the association table itself is under
    RLS.
    """
    with env.factory.for_instance(A) as session:
        note = session.get(Note, (A, 1))
        assert note is not None
        assert [(t.instance_id, t.label) for t in note.tags] == [(A, "red")]
        tag = session.get(Tag, (A, 1))
        assert tag is not None and [(n.instance_id, n.id) for n in tag.notes] == [(A, 1)]
        tagged = session.scalars(select(Note).join(Note.tags).where(Tag.label == "green")).unique().all()
        assert tagged == []
    if env.rls:
        assert rls_count(env, A, "SELECT * FROM iso_note_tags") == COUNTS[A]["links"]
        assert rls_count(env, B, "SELECT * FROM iso_note_tags") == COUNTS[B]["links"]
        assert env.owner_scalar(
            "SELECT relrowsecurity AND relforcerowsecurity FROM pg_class WHERE relname = 'iso_note_tags'"
        )


def test_s12_hand_written_join_to_the_association_table_is_scoped(
    env: Env, request: pytest.FixtureRequest
) -> None:
    """Scenario 12: joining the Core association table by hand in an ORM query yields only A's links."""
    if not env.rls:
        request.applymarker(
            pytest.mark.xfail(
                strict=True,
                reason="the ORM guard scopes mapped entities only; a Core tenant table joined by hand "
                "is filtered by RLS alone, so on SQLite B's link rows join A's notes: why SQLite is "
                "never a default (only an explicit sqlite:// URL, with a TenancyWarning)",
            )
        )
    with env.factory.for_instance(A) as session:
        links = session.execute(
            select(Note.id, note_tags.c.tag_id).join(note_tags, note_tags.c.note_id == Note.id)
        ).all()
        assert sorted(links) == [(1, 1), (2, 2)]


def test_s13_explicit_join_with_custom_on_clause_is_filtered(env: Env) -> None:
    """Scenario 13: join(Note, Note.folder_id == Folder.id) without the tenant in ON still pairs only A's
    rows.
    """
    with env.factory.for_instance(A) as session:
        rows = session.execute(
            select(Folder.instance_id, Note.instance_id, Folder.slug, Note.title)
            .join(Note, Note.folder_id == Folder.id)
            .order_by(Note.id)
        ).all()
        assert [(r.slug, r.title) for r in rows] == [
            ("inbox", "Hello"),
            ("inbox", "Shopping"),
            ("archive", "Old"),
        ]
        assert {(r[0], r[1]) for r in rows} == {(A, A)}
    if env.rls:
        sql = "SELECT * FROM iso_folders f JOIN iso_notes n ON n.folder_id = f.id"
        assert rls_count(env, A, sql) == 3


def test_s14_any_and_has_do_not_match_through_foreign_rows(env: Env) -> None:
    """Scenario 14: Folder.notes.any() / Note.folder.has() never match through B's rows (id-only join
    included).
    """
    with env.factory.for_instance(A) as session:
        # Only B's note 4 ("Extra") sits in a folder with id 1.
        assert (
            session.scalars(select(Folder).where(Folder.loose_notes.any(Note.title == "Extra"))).all() == []
        )
        assert session.scalars(select(Folder).where(Folder.notes.any(Note.title == "Extra"))).all() == []
        has = session.scalars(select(Note).where(Note.folder.has(Folder.slug == "b-only"))).unique().all()
        assert has == []
        count = session.scalar(select(func.count()).select_from(Folder).where(Folder.loose_notes.any()))
        assert count == 2
    if env.rls:
        sql = (
            "SELECT * FROM iso_folders f WHERE EXISTS"
            " (SELECT 1 FROM iso_notes n WHERE n.folder_id = f.id AND n.title = 'Extra')"
        )
        assert rls_count(env, A, sql) == 0


def test_s15_subqueries_ctes_and_unions_are_filtered(env: Env) -> None:
    """Scenario 15: scalar subqueries, IN (select ...), CTEs and union() see only A's rows."""
    with env.factory.for_instance(A) as session:
        scalar = select(func.count(Note.id)).where(Note.folder_id == Folder.id).scalar_subquery()
        assert session.execute(select(Folder.slug, scalar).order_by(Folder.id)).all() == [
            ("inbox", 2),
            ("archive", 1),
        ]
        in_sub = select(Folder.id).where(Folder.id.in_(select(Note.folder_id).where(Note.title == "Extra")))
        assert session.execute(in_sub).all() == []
        cte = select(Note.id, Note.instance_id).cte("n")
        assert sorted(session.execute(select(cte.c.instance_id, cte.c.id)).all()) == [(A, 1), (A, 2), (A, 3)]
        union = union_all(select(Note.instance_id, Note.id), select(Tag.instance_id, Tag.id))
        rows = session.execute(select(union.subquery())).all()
        assert len(rows) == 5 and {r[0] for r in rows} == {A}
        direct_union = session.execute(union).all()
        assert len(direct_union) == 5 and {r[0] for r in direct_union} == {A}
    if env.rls:
        sql = "SELECT instance_id FROM iso_notes UNION ALL SELECT instance_id FROM iso_tags"
        assert rls_count(env, A, sql) == 5


def test_s15_subqueries_inside_update_and_delete_are_filtered(env: Env) -> None:
    """Scenario 15: subqueries in ORM update() values and delete() WHERE only see A's rows."""
    with env.factory.for_instance(A) as session:
        tag_count = select(func.count(Tag.id)).scalar_subquery()
        assert session.execute(update(Note).values(body=func.cast(tag_count, String))).rowcount == 3
        green = select(Tag.id).where(Tag.label == "green")  # B's tag 3; A's note 3 shares its id
        assert session.execute(delete(Note).where(Note.id.in_(green))).rowcount == 0
        session.commit()
    assert env.owner_scalar("SELECT count(*) FROM iso_notes WHERE body = '2'") == COUNTS[A]["notes"]
    assert env.owner_scalar("SELECT count(*) FROM iso_notes") == COUNTS[A]["notes"] + COUNTS[B]["notes"]


def test_s16_counts_exists_and_aggregates_cover_only_own_rows(env: Env) -> None:
    """Scenario 16: count(), func.count().select_from(), exists() and aggregates only cover A."""
    with env.factory.for_instance(A) as session:
        assert session.scalar(select(func.count()).select_from(Note)) == 3
        assert session.scalar(select(func.count(Note.id))) == 3
        assert session.query(Note).count() == 3
        assert session.scalar(select(func.max(Note.id))) == 3
        assert session.scalar(select(exists().where(Note.title == "Extra"))) is False
        assert session.scalar(exists().where(Note.title == "Extra").select()) is False
        assert session.scalar(select(exists(select(Note.id).where(Note.title == "Extra")))) is False
        assert session.scalar(select(exists().where(Note.title == "Hello"))) is True
        assert session.query(Folder).filter(Folder.slug == "b-only").count() == 0
    if env.rls:
        with env.tenant_connection(A) as conn:
            assert conn.execute(text("SELECT count(*), max(id) FROM iso_notes")).one() == (3, 3)


def test_s17_aliases_and_self_referential_joins_are_filtered_on_both_sides(env: Env) -> None:
    """Scenario 17: aliased(Folder) in a self-join on id alone is filtered on both sides."""
    parent = aliased(Folder)
    with env.factory.for_instance(A) as session:
        rows = session.execute(
            select(Folder.instance_id, parent.instance_id, Folder.slug, parent.slug).join(
                parent, Folder.parent_id == parent.id
            )
        ).all()
        assert [(r[2], r[3]) for r in rows] == [("archive", "inbox")]
        assert {(r[0], r[1]) for r in rows} == {(A, A)}
        other = aliased(Note)
        pairs = session.execute(select(Note.id, other.id).join(other, other.id == Note.id)).all()
        assert sorted(pairs) == [(1, 1), (2, 2), (3, 3)]
    if env.rls:
        sql = "SELECT * FROM iso_folders c JOIN iso_folders p ON c.parent_id = p.id"
        assert rls_count(env, A, sql) == 1


def test_s18_polymorphic_loads_are_filtered(env: Env) -> None:
    """Scenario 18: STI subclasses, with_polymorphic and selectin_polymorphic loads return only A's
    rows.
    """
    with env.factory.for_instance(A) as session:
        assert [(t.instance_id, t.title) for t in session.scalars(select(Task))] == [(A, "Do")]
        assert [(e.instance_id, e.title) for e in session.scalars(select(Event))] == [(A, "Meet")]
        poly = with_polymorphic(Item, [Task, Event])
        items = session.scalars(select(poly).order_by(poly.id)).all()
        assert [(type(i).__name__, i.instance_id) for i in items] == [("Task", A), ("Event", A)]
        items = session.scalars(select(Item).options(selectin_polymorphic(Item, [Task, Event]))).all()
        assert {i.instance_id for i in items} == {A} and len(items) == 2
    if env.rls:
        assert rls_count(env, A, "SELECT * FROM iso_items WHERE kind = 'task'") == 1


def test_s19_raw_text_select_sees_only_own_rows(pg: Env) -> None:
    """Scenario 19: a raw text("SELECT ... FROM iso_notes") in A's session is filtered by RLS."""
    with pg.factory.for_instance(A) as session:
        rows = session.execute(text("SELECT instance_id, id FROM iso_notes ORDER BY id")).all()
        assert [tuple(r) for r in rows] == [(A, 1), (A, 2), (A, 3)]
        assert session.execute(text("SELECT count(*) FROM iso_note_tags")).scalar_one() == 2


def test_s19_orm_query_from_raw_text_refuses_rows_of_other_tenant(env: Env) -> None:
    """Scenario 19: select(Note).from_statement(text(...)) in A's session never yields B's rows."""
    raw = select(Note).from_statement(text("SELECT * FROM iso_notes ORDER BY instance_id, id"))
    with env.factory.for_instance(A) as session:
        if env.rls:
            assert {n.instance_id for n in session.scalars(raw)} == {A}
        else:  # no RLS: B's rows reach the session, and the guard refuses them at load
            with pytest.raises(CrossTenantAccess):
                session.scalars(raw).all()
        assert all(obj.instance_id == A for obj in session.identity_map.values())


def test_s20_core_select_and_driver_sql_see_only_own_rows(pg: Env) -> None:
    """Scenario 20: Core select(table) and connection().exec_driver_sql() see only A's rows (RLS)."""
    notes = Note.__table__
    with pg.factory.for_instance(A) as session:
        assert {r.instance_id for r in session.execute(select(notes))} == {A}
        assert len(session.execute(select(notes)).all()) == 3
        conn = session.connection()
        assert conn.execute(select(func.count()).select_from(notes)).scalar_one() == 3
        assert conn.exec_driver_sql("SELECT count(*) FROM iso_notes").scalar_one() == 3
        assert conn.exec_driver_sql("SELECT count(*) FROM iso_folders WHERE id = 3").scalar_one() == 0


def test_s21_no_tenant_means_no_session_and_zero_rows(pg: Env) -> None:
    """Scenario 21: the factory refuses to build a session without a tenant; a raw runtime connection sees 0
    rows.
    """
    from tenancy import InvalidInstanceId

    with pytest.raises(InvalidInstanceId):
        pg.factory.for_instance(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        pg.factory.for_instance()  # type: ignore[call-arg]
    with pg.tenant_connection(None) as conn:
        for table in ("iso_folders", "iso_notes", "iso_tags", "iso_note_tags", "iso_items", "tenants"):
            assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() == 0, table
        assert conn.execute(text("SELECT count(*) FROM iso_note_titles")).scalar_one() == 0


def test_s23_streamed_result_stays_with_its_tenant(pg: Env) -> None:
    """Scenario 23: a server-side streamed result opened in A keeps yielding A's rows while B works
    elsewhere.
    """
    with pg.factory.for_instance(A) as session_a:
        stream = session_a.scalars(
            select(Note).order_by(Note.id).execution_options(yield_per=1, stream_results=True)
        )
        first = next(iter(stream))
        seen_by_b: list = []

        def other_tenant() -> None:
            with pg.factory.for_instance(B) as session_b:
                seen_by_b.extend(session_b.scalars(select(Note.instance_id)).all())

        worker = threading.Thread(target=other_tenant)
        worker.start()
        worker.join()
        rest = list(stream)
        assert [(n.instance_id, n.id) for n in [first, *rest]] == [(A, 1), (A, 2), (A, 3)]
        assert set(seen_by_b) == {B} and len(seen_by_b) == 4
        with session_a.connection().exec_driver_sql("SELECT instance_id FROM iso_notes").yield_per(1) as raw:
            assert {r[0] for r in raw} == {A}


def test_s24_refresh_and_populate_existing_cannot_resurrect_foreign_rows(env: Env) -> None:
    """Scenario 24: refresh() and populate_existing reload A's row, never B's row with the same id."""
    with env.factory.for_instance(A) as session:
        note = session.get(Note, (A, 1))
        assert note is not None
        with env.owner.begin() as conn:
            conn.execute(
                update(Note.__table__).where(Note.__table__.c.instance_id == B).values(title="B edit")
            )
        session.refresh(note)
        assert (note.instance_id, note.title) == (A, "Hello")
        again = (
            session.scalars(select(Note).execution_options(populate_existing=True).order_by(Note.id))
            .unique()
            .all()
        )
        assert {(n.instance_id, n.title) for n in again} == {(A, "Hello"), (A, "Shopping"), (A, "Old")}
        # A's row deleted underneath: refresh finds nothing and says so, it does not pick up B's (A, 1) twin.
        env.owner_execute("DELETE FROM iso_notes WHERE instance_id = :a AND id = 3", a=A)
        old = session.get(Note, (A, 3))
        with pytest.raises(InvalidRequestError):
            session.refresh(old)
