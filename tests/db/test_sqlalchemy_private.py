"""Canary: SQLAlchemy's private names the ORM guard reads still exist and still mean the same.

``tenancy/orm/_sqlalchemy_private.py`` is the only module that touches them (and says why no
public API does the job); ``pyproject.toml`` pins SQLAlchemy to the minor series these tests
passed on. When an upgrade moves one of them, a test here fails naming it, instead of the guard
silently checking nothing.
"""

from __future__ import annotations

import ast
import uuid
from pathlib import Path

import sqlalchemy
from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    Table,
    create_engine,
    delete,
    event,
    exists,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.orm import Session, aliased

from tenancy.orm import _sqlalchemy_private as private
from tests.isolation.models import IsoBase, Note, Tag

PACKAGE = Path(__file__).resolve().parents[2] / "tenancy"
PRIVATE_MODULE = PACKAGE / "orm" / "_sqlalchemy_private.py"
# Every private SQLAlchemy name the guard has ever needed: none may appear outside PRIVATE_MODULE.
PRIVATE_NAMES = {
    "_values",
    "_multi_values",
    "_where_criteria",
    "_from_objects",
    "_annotations",
    "_generate",
    "_set_propagate_attrs",
    "_propagate_attrs",
    "_select_names",
    "_deannotate",
    "_raw_columns",
    "_with_options",
    "_compile_state_factory",
}
T = uuid.UUID("11111111-1111-4111-8111-111111111111")


def _keyed(row: object) -> dict[object, object]:
    """A VALUES row with column keys as names (SQLAlchemy stores Column objects or strings)."""
    assert isinstance(row, dict), row
    return {getattr(k, "key", k): getattr(v, "value", v) for k, v in row.items()}


def test_the_installed_sqlalchemy_is_the_series_the_canary_passed_on() -> None:
    """pyproject.toml says SQLAlchemy>=2.1,<2.2: widen it only after this canary passes on the new series."""
    assert sqlalchemy.__version__.startswith("2.1."), sqlalchemy.__version__
    pyproject = (PACKAGE.parent / "pyproject.toml").read_text()
    assert '"SQLAlchemy>=2.1,<2.2"' in pyproject


def test_values_of_an_insert_are_readable() -> None:
    """ValuesBase._values / _multi_values: what .values() was given, keys and literals intact."""
    single, multi = private.statement_values(insert(Note).values(instance_id=T, id=1))
    assert single is not None and multi == ()
    assert _keyed(dict(single)) == {"instance_id": T, "id": 1}

    rows = [{"instance_id": T, "id": 1}, {"id": 2}]
    single, multi = private.statement_values(insert(Note).values(rows))
    assert single is None
    assert [[_keyed(row) for row in group] for group in multi] == [rows]

    single, multi = private.statement_values(update(Note).values(title="x"))
    assert single is not None and [getattr(k, "key", k) for k in single] == ["title"]
    assert private.statement_values(insert(Note)) == (None, ())


def test_multi_values_can_be_replaced_keeping_what_was_chained() -> None:
    """ValuesBase._generate() + _multi_values: a copy with other rows, RETURNING kept, original untouched."""
    original = insert(Note).values([{"id": 1}, {"id": 2}]).returning(Note.id)
    stamped = private.with_multi_values(
        original, [[{"id": 1, "instance_id": T}, {"id": 2, "instance_id": T}]]
    )
    assert stamped is not original
    assert [_keyed(r) for r in private.statement_values(original)[1][0]] == [{"id": 1}, {"id": 2}]
    assert [_keyed(r) for r in private.statement_values(stamped)[1][0]] == [
        {"id": 1, "instance_id": T},
        {"id": 2, "instance_id": T},
    ]
    sql = str(stamped.compile())
    assert "RETURNING" in sql and "instance_id" in sql


def test_from_select_names_are_readable() -> None:
    """Insert._select_names: the names of insert().from_select(names, select), in order."""
    stmt = insert(Note).from_select(["instance_id", "id"], select(Tag.instance_id, Tag.id))
    assert [getattr(n, "key", n) for n in private.from_select_names(stmt)] == ["instance_id", "id"]
    assert private.from_select_names(insert(Note)) == []


def test_an_orm_column_names_its_entity_and_a_core_column_does_not() -> None:
    """ClauseElement._annotations["parententity"]: ORM attribute -> mapper; plain table column -> None."""
    assert private.orm_mapper_of(Note.title.__clause_element__()) is sqlalchemy.inspect(Note)
    alias = aliased(Tag)
    assert private.orm_mapper_of(alias.label.__clause_element__()) is sqlalchemy.inspect(Tag)
    assert private.orm_mapper_of(Note.__table__.c.title) is None
    assert private.orm_mapper_of(literal(1)) is None


def test_the_orm_entities_of_a_core_statement_are_found_in_its_subqueries() -> None:
    """_annotations while walking: select(exists().where(Note.x == 1)) is Core yet names Note."""
    mappers = list(private.orm_mappers_in(select(exists().where(Note.title == "x"))))
    assert sqlalchemy.inspect(Note) in mappers
    assert list(private.orm_mappers_in(select(exists().where(Note.__table__.c.title == "x")))) == []


def test_extra_froms_of_an_update_are_the_top_level_froms_of_its_where_clause() -> None:
    """_where_criteria + _from_objects + _deannotate(): tables the WHERE adds, not its subqueries'."""
    notes, tags = Note.__table__, Tag.__table__

    def extra(stmt: object) -> list[object]:
        return [base for _, base, _ in private.extra_where_froms(stmt)]

    assert extra(update(Note).where(Note.id == Tag.id, Tag.label == "x", Tag.id > 0)) == [tags]
    assert extra(delete(Note).where(Note.id.in_(select(Tag.id)))) == []
    assert extra(delete(Note)) == []
    assert extra(update(notes).where(notes.c.id == tags.c.id)) == [tags]

    alias = aliased(Tag)
    [(item, base, mapper)] = private.extra_where_froms(update(Note).where(Note.id == alias.id))
    assert base.element is tags and "instance_id" in item.c
    assert mapper is None  # an alias's FROM carries no entity: the guard checks its table's mark


def test_a_core_select_can_be_marked_as_orm() -> None:
    """Select._set_propagate_attrs: a SELECT whose ORM entity sits in a subquery compiles as ORM."""
    core = select(exists().where(Note.title == "x"))
    marked = private.as_orm_select(core.options(), sqlalchemy.inspect(Note))
    engine = create_engine("sqlite://")
    IsoBase.metadata.create_all(engine)
    seen: list[bool] = []
    with Session(engine) as session:
        event.listen(session, "do_orm_execute", lambda state: seen.append(state.is_orm_statement))
        assert session.execute(core).scalar() is False
        assert session.execute(marked).scalar() is False
    assert seen == [False, True]  # the caller's statement unchanged, the copy run as ORM
    engine.dispose()


def test_a_plain_table_statement_has_the_same_private_shape() -> None:
    """The same names on Core statements (the guard reads them on any INSERT/UPDATE it checks)."""
    table = Table("canary", MetaData(), Column("id", Integer, primary_key=True))
    assert private.statement_values(insert(table).values(id=1))[0] is not None
    assert private.statement_values(update(table).values(id=2))[0] is not None


def _private_names_used(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    used = {
        node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute) and node.attr in PRIVATE_NAMES
    }
    used |= {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and node.value in PRIVATE_NAMES
    }
    return used


def test_no_other_module_of_tenancy_touches_sqlalchemy_private_names() -> None:
    """The private names stay confined to one module, so the canary above covers every use."""
    offenders = {
        str(path.relative_to(PACKAGE.parent)): sorted(names)
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != PRIVATE_MODULE and (names := _private_names_used(path))
    }
    assert offenders == {}
    assert _private_names_used(PRIVATE_MODULE) >= {
        "_values",
        "_multi_values",
        "_select_names",
        "_from_objects",
    }
