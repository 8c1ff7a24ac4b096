"""The ORM layer of isolation: what a :class:`~tenancy.orm.sessions.TenantSession` enforces itself.

Listeners are registered once, on the ``TenantSession`` class and the ``TenantScoped`` mixin,
never per session: nothing accumulates on engines, pools or connections, and nothing is left
behind when a session closes (or raises).

- Reads: every ORM SELECT, UPDATE and DELETE gets ``instance_id = :tenant`` for every
  tenant-scoped entity, aliases, relationship and column loads included
  (``with_loader_criteria``). A row of another tenant that still reaches the session (e.g. an
  ORM query built on ``text()`` on SQLite) raises :class:`~tenancy.CrossTenantAccess` at load.
- Writes: new objects without ``instance_id`` are stamped with the tenant; another tenant's id,
  a changed ``instance_id`` and ORM ``insert()``/``update()`` statements that name another
  tenant raise :class:`~tenancy.CrossTenantWrite` before anything reaches the database.
  ``insert().from_select()`` gets the criteria on its SELECT and must take ``instance_id``
  from a tenant entity or this tenant's literal id.
- Core statements and ``text()`` are left to PostgreSQL row-level security. A SELECT that is
  Core only because its ORM entities sit in a subquery (``select(exists().where(Note.x == 1))``)
  is run as the ORM statement it was written as, criteria included.

Everything here is SQLAlchemy's public API (``ORMExecuteState``, ``with_loader_criteria``,
events, ``inspect()``, ``Insert.select``, ``Select.column_descriptions``,
``entity_description``). What a check can only read from SQLAlchemy's private state goes through
:mod:`tenancy.orm._sqlalchemy_private`, which says why for each name.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import BindParameter, Select, Uuid, bindparam, event, inspect
from sqlalchemy.orm import (
    InstanceState,
    LoaderCriteriaOption,
    ORMExecuteState,
    QueryContext,
    Session,
    with_loader_criteria,
)

from tenancy.errors import CrossTenantAccess, CrossTenantWrite
from tenancy.models import TENANT_COLUMN, TenantScoped, is_tenant_table
from tenancy.orm import _sqlalchemy_private as private

__all__ = [
    "TENANT_CRITERIA",
    "TENANT_PARAM",
    "as_uuid",
    "check_attach",
    "check_flush",
    "check_mappings",
    "check_new_object",
    "scope_statement",
    "stamp_on_add",
]


TENANT_PARAM = "tenancy_instance_id"
"""Name of the bound parameter that carries the tenant into every scoped ORM statement."""

# One option for every session and tenant: the tenant is a *named* bound parameter that
# scope_statement() supplies with each execution, not a closure variable. Closure tracking
# would work too, but with include_aliases=True SQLAlchemy then matches the extracted
# parameter against annotated clones of it on every execution (about 25 us per statement
# here, most of the tenant session's overhead), and the option would have to be built per
# tenant. A statement that somehow reached the database without the parameter would fail
# ("a value is required for bind parameter"), never run unfiltered.
_TENANT_BIND = bindparam(TENANT_PARAM, type_=Uuid())  # built here: no calls inside the lambda
TENANT_CRITERIA: LoaderCriteriaOption = with_loader_criteria(
    TenantScoped,
    lambda cls: cls.instance_id == _TENANT_BIND,
    include_aliases=True,
    propagate_to_loaders=True,
    track_closure_variables=False,
)


def _valued_criteria(tenant: uuid.UUID) -> LoaderCriteriaOption:
    """Criteria carrying *tenant* itself (a closure variable, still a bound parameter)."""
    return with_loader_criteria(
        TenantScoped,
        lambda cls: cls.instance_id == tenant,
        include_aliases=True,
        propagate_to_loaders=True,
    )


def _tenant_of(session: Session) -> uuid.UUID | None:
    return getattr(session, "_tenancy_instance_id", None)


def check_new_object(tenant: uuid.UUID, obj: object) -> None:
    """Stamp a new tenant-scoped object with the session's *tenant*, or refuse another's."""
    if not isinstance(obj, TenantScoped):
        return
    current = obj.instance_id
    if current is None:
        obj.instance_id = tenant
    elif as_uuid(current) != tenant:
        raise CrossTenantWrite(
            f"{type(obj).__name__} belongs to instance {current}, not to this session's tenant"
        )


def check_mappings(
    tenant: uuid.UUID, mappings: Iterable[Mapping[str, Any]], what: str
) -> list[dict[str, Any]]:
    """Stamp parameter dicts that lack ``instance_id``; refuse the whole batch if one names another tenant."""
    stamped: list[dict[str, Any]] = []
    for row in mappings:
        value = row.get(TENANT_COLUMN)
        if value is None:
            stamped.append({**row, TENANT_COLUMN: tenant})
        elif as_uuid(value) != tenant:
            raise CrossTenantWrite(f"{what} names another tenant's instance_id; nothing was written")
        else:
            stamped.append(dict(row))
    return stamped


def as_uuid(value: Any) -> uuid.UUID | None:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _mentions_tenant(statement: Any) -> bool:
    # The statement's own entity (public entity_description), not ORMExecuteState.bind_mapper:
    # a caller's bind_arguments={"mapper": ...} would otherwise choose what gets checked.
    entity = statement.entity_description.get("entity") if hasattr(statement, "entity_description") else None
    return isinstance(entity, type) and issubclass(entity, TenantScoped)


def _is_tenant_mapper(mapper: Any) -> bool:
    return mapper is not None and issubclass(mapper.class_, TenantScoped)


def _values_of(statement: Any) -> list[Mapping[Any, Any]]:
    """The rows ``.values()`` gave an INSERT/UPDATE (SQLAlchemy has no public reader of them)."""
    single, multi = private.statement_values(statement)
    rows: list[Mapping[Any, Any]] = [single] if single else []
    for group in multi:
        for row in group:
            if not isinstance(row, Mapping):
                raise CrossTenantWrite("multi-row values() given as tuples cannot be checked; pass dicts")
            rows.append(row)
    return rows


def _key_name(key: Any) -> str:
    return key if isinstance(key, str) else getattr(key, "key", str(key))


def _names_tenant(row: Mapping[Any, Any]) -> bool:
    return any(_key_name(key) == TENANT_COLUMN for key in row)


def _check_statement_values(state: ORMExecuteState, tenant: uuid.UUID, *, is_insert: bool) -> bool:
    """Raise if .values() names another tenant; return whether instance_id is given."""
    rows = _values_of(state.statement)
    given = False
    for row in rows:
        for key, value in row.items():
            if _key_name(key) != TENANT_COLUMN:
                continue
            given = True
            literal = value.value if isinstance(value, BindParameter) else value
            if isinstance(value, BindParameter) and value.callable is not None:
                literal = value.callable()
            if as_uuid(literal) != tenant:
                verb = "insert" if is_insert else "update"
                raise CrossTenantWrite(f"ORM {verb}() sets instance_id to another tenant (or an expression)")
    if not is_insert and given:
        # Setting instance_id in an UPDATE is at best a no-op; refuse it outright.
        raise CrossTenantWrite("ORM update() must not set instance_id")
    return given


def _orm_tenant_mapper(statement: Any) -> Any:
    """A tenant-scoped mapper whose ORM attributes appear in a statement that is not ORM, or None."""
    for mapper in private.orm_mappers_in(statement):
        if issubclass(mapper.class_, TenantScoped):
            return mapper
    return None


def _scope_insert_from_select(state: ORMExecuteState, tenant: uuid.UUID) -> None:
    """``insert().from_select(names, select)``: scope the SELECT and check the tenant it writes."""
    # An embedded ORM SELECT takes its loader criteria from the top-level statement's options
    # (its own are not consulted when nested): without them it would copy every tenant's rows.
    # Parameters of an ORM insert are VALUES, so the tenant cannot travel as TENANT_PARAM
    # here: this (rare) statement gets criteria whose tenant is a closure variable.
    insert_stmt: Any = state.statement.options(_valued_criteria(tenant))
    source = insert_stmt.select
    if _mentions_tenant(insert_stmt):
        names = [_key_name(name) for name in private.from_select_names(insert_stmt)]
        if TENANT_COLUMN not in names or not isinstance(source, Select):
            raise CrossTenantWrite("ORM insert().from_select() must select instance_id from a tenant entity")
        if not _is_tenant_expression(source, names.index(TENANT_COLUMN), tenant):
            raise CrossTenantWrite(
                "ORM insert().from_select() must take instance_id from a tenant entity or this tenant's id"
            )
    state.statement = insert_stmt


def _is_tenant_expression(source: Select[Any], index: int, tenant: uuid.UUID) -> bool:
    """Whether column *index* of *source* can only be this tenant's id: its literal or instance_id."""
    column = list(source.selected_columns)[index]
    element = getattr(column, "element", column)  # unwrap a label
    if isinstance(element, BindParameter):
        value = element.callable() if element.callable is not None else element.value
        return as_uuid(value) == tenant
    # The ORM entity the column was written with (public column_descriptions; None for Core).
    entity = source.column_descriptions[index].get("entity")
    mapper = inspect(entity).mapper if entity is not None else None
    return _is_tenant_mapper(mapper) and getattr(element, "key", None) == TENANT_COLUMN


def scope_statement(state: ORMExecuteState) -> Any:
    """``do_orm_execute`` listener of tenant sessions: scope, stamp and check ORM statements."""
    tenant = _tenant_of(state.session)
    if tenant is None:
        return None
    if not state.is_orm_statement:
        if state.is_select and isinstance(state.statement, Select):
            # A SELECT whose only ORM entities sit in a subquery, e.g.
            # select(exists().where(Note.title == x)), compiles as Core and would skip the
            # loader criteria; run it as the ORM statement it was written as.
            mapper = _orm_tenant_mapper(state.statement)
            if mapper is not None:
                statement = private.as_orm_select(state.statement.options(TENANT_CRITERIA), mapper)
                state.parameters = _with_tenant(state.parameters, tenant)
                return state.invoke_statement(statement=statement)
        # Core on tables / text(): row-level security's job.
        return None
    if state.is_insert:
        if getattr(state.statement, "select", None) is not None:
            return _scope_insert_from_select(state, tenant)
        if not _mentions_tenant(state.statement):
            return None
        given = _check_statement_values(state, tenant, is_insert=True)
        if state.is_executemany or (isinstance(state.parameters, Mapping) and state.parameters):
            params = state.parameters if state.is_executemany else [state.parameters]
            stamped = check_mappings(tenant, params, "ORM insert()")  # type: ignore[arg-type]
            if state.is_executemany:
                return state.invoke_statement(params=stamped)
            return state.invoke_statement(params=stamped[0])
        multi = private.statement_values(state.statement)[1]
        if multi:
            # insert().values([...]): stamp every row that does not name the tenant (the
            # others were checked above). values() can only add rows, so replace them.
            state.statement = private.with_multi_values(
                state.statement,
                [
                    [row if _names_tenant(row) else {**row, TENANT_COLUMN: tenant} for row in group]
                    for group in multi
                ],
            )
            return None
        if not given and not _values_of(state.statement):
            return None
        if not given:
            state.statement = state.statement.values({TENANT_COLUMN: tenant})  # type: ignore[attr-defined]
        return None
    if state.is_update:
        _check_statement_values(state, tenant, is_insert=False)
        if state.is_executemany:
            # ORM bulk UPDATE by primary key: loader criteria do not apply, so every row must
            # name this tenant in its (composite) primary key.
            for row in state.parameters:  # type: ignore[union-attr]
                if not isinstance(row, Mapping) or as_uuid(row.get(TENANT_COLUMN)) != tenant:
                    raise CrossTenantWrite(
                        "ORM bulk UPDATE by primary key names another tenant (or none); nothing was written"
                    )
            return None
    scoped: Any = state.statement.options(TENANT_CRITERIA)
    if state.is_update or state.is_delete:
        for criterion in _extra_from_criteria(scoped, tenant):
            scoped = scoped.where(criterion)
    state.statement = scoped
    state.parameters = _with_tenant(state.parameters, tenant)
    return None


def _with_tenant(parameters: Any, tenant: uuid.UUID) -> Any:
    # The tenant wins over a caller's parameter of the same name: it cannot be overridden.
    if isinstance(parameters, Mapping) or parameters is None:
        return {**(parameters or {}), TENANT_PARAM: tenant}
    return [{**row, TENANT_PARAM: tenant} for row in parameters]


def _extra_from_criteria(statement: Any, tenant: uuid.UUID) -> list[Any]:
    """``instance_id = :tenant`` for each tenant table an UPDATE/DELETE adds to its FROM list.

    ``update(Note).where(Note.id == Tag.id)`` renders ``UPDATE ... FROM iso_tags``; the loader
    criteria cover the target only, so Tag rows of every tenant would steer the statement.
    Subqueries in the WHERE clause are not FROMs of the statement (they get the criteria).
    """
    criteria: list[Any] = []
    for item, base, mapper in private.extra_where_froms(statement):
        table = getattr(base, "element", base)  # an alias wraps its table
        tenant_scoped = mapper is not None and issubclass(mapper.class_, TenantScoped)
        if (tenant_scoped or is_tenant_table(table)) and TENANT_COLUMN in item.c:
            criteria.append(item.c[TENANT_COLUMN] == tenant)
    return criteria


# raw=True: the listeners get the InstanceState, so SQLAlchemy skips a wrapper per row and we
# skip inspect(); this runs once per loaded row, the hottest path of a tenant session's scan.
@event.listens_for(TenantScoped, "load", propagate=True, raw=True)
def _check_loaded(state: InstanceState[Any], context: QueryContext | None) -> None:
    if context is None:
        # merge() built the object from another one, without SQL: refuse it if it is foreign.
        target = state.obj()
        if state.session is not None and target is not None:
            _refuse_foreign_attached(state.session, target)
        return
    _check_row_owner(state, context.session)


@event.listens_for(TenantScoped, "refresh", propagate=True, raw=True)
def _check_refreshed(state: InstanceState[Any], context: QueryContext | None, attrs: Any) -> None:
    # context is None when an ORM UPDATE writes its values into loaded objects.
    if context is not None:
        _check_row_owner(state, context.session)


def _check_row_owner(state: InstanceState[Any], session: Session | None) -> None:
    tenant = getattr(session, "_tenancy_instance_id", None)
    if tenant is None:
        return
    owner = state.dict.get(TENANT_COLUMN)
    if owner is None or owner == tenant:  # the common case: a uuid.UUID equal to the tenant
        return
    if as_uuid(owner) != tenant:
        raise CrossTenantAccess(
            f"a {state.mapper.class_.__name__} row of another tenant reached this tenant session; refused"
        )


def _owners_of(target: TenantScoped) -> set[uuid.UUID | None]:
    """The tenants *target* names: its ``instance_id`` value (if loaded) and its identity key's."""
    state = inspect(target)
    owners: set[uuid.UUID | None] = set()
    if TENANT_COLUMN in state.dict:
        owners.add(as_uuid(state.dict[TENANT_COLUMN]))
    if state.key is not None:
        # The primary key's columns, in order; TenantScoped puts instance_id among them.
        keys = [state.mapper.get_property_by_column(col).key for col in state.mapper.primary_key]
        if TENANT_COLUMN in keys:
            owners.add(as_uuid(state.key[1][keys.index(TENANT_COLUMN)]))
    return owners


def _refuse_foreign_attached(session: Session, target: TenantScoped) -> None:
    tenant = _tenant_of(session)
    if tenant is None:
        return
    if _owners_of(target) <= {tenant}:
        return
    pending = inspect(target).pending
    # Take it out again so that nothing (get(), lazy loads, flush) can reach it afterwards.
    session.expunge(target)
    error = CrossTenantWrite if pending else CrossTenantAccess
    raise error(f"a {type(target).__name__} of another tenant cannot join this tenant session")


def check_attach(session: Session, instance: object) -> None:
    """``detached_to_persistent`` listener: an object of another tenant cannot join the session.

    ``Session.add()`` of a detached object and ``merge(load=False)`` put objects straight into
    the identity map, without SQL and so without loader criteria; ``get()`` and many-to-one
    lazy loads would then return them from there.
    """
    if isinstance(instance, TenantScoped):
        _refuse_foreign_attached(session, instance)


def check_flush(session: Session, flush_context: Any, instances: Any) -> None:
    """``before_flush`` listener: stamp new objects, refuse foreign or re-tenanted ones."""
    tenant = _tenant_of(session)
    if tenant is None:
        return
    for obj in session.new:
        check_new_object(tenant, obj)
    for obj in list(session.dirty) + list(session.deleted):
        if not isinstance(obj, TenantScoped):
            continue
        history = inspect(obj).attrs[TENANT_COLUMN].history
        if history.has_changes():
            raise CrossTenantWrite(f"instance_id of a {type(obj).__name__} cannot change")
        if as_uuid(obj.instance_id) != tenant:
            raise CrossTenantWrite(f"{type(obj).__name__} belongs to another tenant")


def stamp_on_add(session: Session, instance: object) -> None:
    """``transient_to_pending`` listener: stamp or refuse an object as it is added."""
    tenant = _tenant_of(session)
    if tenant is None:
        return
    try:
        check_new_object(tenant, instance)
    except CrossTenantWrite:
        # add() already put the object in session.new; take it out so no later flush writes it.
        session.expunge(instance)
        raise
