"""The only module of tenancy that touches SQLAlchemy's private names; each one says why.

The ORM guard (:mod:`tenancy.orm.guard`) works on SQLAlchemy's public API (``ORMExecuteState``,
``with_loader_criteria``, session, mapper and instance events, ``inspect()``, ``Insert.select``,
``Select.column_descriptions``, ``entity_description``, ``selected_columns``). A few of its checks need
to *read* what a statement was built with, which SQLAlchemy only stores privately. They are
gathered here, behind small functions, so that:

- ``tests/db/test_sqlalchemy_private.py`` (the canary) exercises every one of them on the
  installed SQLAlchemy and fails loudly, naming the attribute, when an upgrade moves one;
- ``pyproject.toml`` pins SQLAlchemy to the minor series the canary passed on (``>=2.1,<2.2``).

The names, and why no public API does the job (checked against SQLAlchemy 2.1):

``ValuesBase._values`` / ``ValuesBase._multi_values``
    ``insert().values(...)`` and ``update().values(...)`` are write-only: no public attribute or
    method returns the VALUES given, yet a tenant session must refuse ``values(instance_id=B)``
    before it reaches the database (on SQLite there is no row-level security behind it).
    ``compile().params`` is public but loses which column a value belongs to in a multi-row
    VALUES (``instance_id_m1``...) and whether it was a literal or an expression, and it costs a
    compilation per statement.
``ValuesBase._generate()`` + ``_multi_values`` (write)
    Stamping the tenant into every row of a multi-row ``values([...])`` that lacks it: calling
    ``values()`` again adds rows instead of replacing them, and rebuilding the ``insert()``
    from scratch would drop what the caller chained on it (``returning()``, hints, options).
``Insert._select_names``
    ``insert().from_select(names, select)`` keeps *names* only privately; the guard needs them
    to find which selected column becomes ``instance_id``.
``ClauseElement._annotations["parententity"]`` (also walked with the public ``visitors.iterate``)
    The only link from a column expression (``Note.title == x``) back to the ORM entity it was
    written with; the public ``column_descriptions`` / ``entity_description`` describe a
    statement's top-level entities only, not the columns in its WHERE clause or a subquery.
    It tells an ORM attribute (the ORM layer's job) from a Core column of the same table
    (left to row-level security, as documented).
``ClauseElement._deannotate()``
    The plain table behind an ORM-annotated one, to compare FROM objects by identity (an
    annotated copy is a different object for each expression that mentions the table).
``DMLWhereBase._where_criteria`` + ``ClauseElement._from_objects``
    The FROM objects a WHERE clause brings into an UPDATE/DELETE (``UPDATE notes ... FROM
    tags``) and not those of its subqueries. The public ``Select.get_final_froms()`` compiles a
    whole SELECT (and refuses one without columns), far too costly per statement; the public
    ``Update.whereclause`` builds a new ``and_()`` on every call (3 to 9 us more per ORM
    UPDATE/DELETE, measured), where the criteria tuple is already there.
``Select._set_propagate_attrs()``
    A SELECT whose ORM entities sit only in a subquery (``select(exists().where(Note.x == 1))``)
    compiles as Core and would skip the loader criteria; this marks it as the ORM statement it
    was written as. No public method sets the compile plugin without changing the statement
    (``select_from(Note)`` would add ``Note`` to the FROM list).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy.sql import visitors

__all__ = [
    "as_orm_select",
    "extra_where_froms",
    "from_select_names",
    "orm_mapper_of",
    "orm_mappers_in",
    "statement_values",
    "with_multi_values",
]


def statement_values(statement: Any) -> tuple[Mapping[Any, Any] | None, Sequence[Sequence[Any]]]:
    """What ``.values()`` gave an INSERT/UPDATE: the single-row mapping (or None) and the multi-row groups."""
    return statement._values or None, statement._multi_values or ()


def with_multi_values(statement: Any, groups: Sequence[Sequence[Mapping[Any, Any]]]) -> Any:
    """A copy of a multi-row INSERT whose rows are *groups* (everything else chained on it kept)."""
    copy = statement._generate()
    copy._multi_values = tuple(tuple(group) for group in groups)
    return copy


def from_select_names(statement: Any) -> list[Any]:
    """The column names of ``insert().from_select(names, select)``, in order (empty otherwise)."""
    return list(statement._select_names or ())


def orm_mapper_of(element: Any) -> Any:
    """The mapper of the ORM entity a column or FROM element was written with, or None (Core)."""
    entity = getattr(element, "_annotations", {}).get("parententity")
    return getattr(entity, "mapper", None)


def orm_mappers_in(statement: Any) -> Iterator[Any]:
    """The mappers of the ORM entities a statement's elements were written with, subqueries included."""
    for element in visitors.iterate(statement):
        entity = getattr(element, "_annotations", {}).get("parententity")
        if entity is not None:
            yield entity.mapper


def extra_where_froms(statement: Any) -> Iterator[tuple[Any, Any, Any]]:
    """What an UPDATE/DELETE's WHERE clause adds to its FROM list besides its target, once each.

    Yields ``(from, plain, mapper)``: the FROM object as written, the very Table (or Alias) it
    stands for without ORM annotations, and the mapper of the ORM entity it came from (or None).
    FROMs inside the WHERE clause's subqueries are not the statement's and are not yielded.
    """
    target = statement.table._deannotate()
    seen: set[Any] = set()
    for criterion in statement._where_criteria:
        for item in criterion._from_objects:
            base = item._deannotate()
            if base is target or base in seen:
                continue
            seen.add(base)
            entity = item._annotations.get("parententity")
            yield item, base, getattr(entity, "mapper", None)


def as_orm_select(statement: Any, mapper: Any) -> Any:
    """*statement* marked as ORM (compile plugin "orm", bound to *mapper*): loader criteria apply.

    Marks *statement* itself and returns it: pass a fresh copy (``.options()`` returns one), never
    the caller's statement.
    """
    return statement._set_propagate_attrs({"compile_state_plugin": "orm", "plugin_subject": mapper})
