"""Assertions that a model (or a whole database) is isolated per tenant, both layers."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.orm import Session

from tenancy.errors import ConfigurationError, CrossTenantWrite
from tenancy.models import TenantScoped
from tenancy.orm.sessions import TenantSessionFactory
from tenancy.postgres.audit import audit

__all__ = ["assert_database_isolated", "assert_tenant_isolation"]


def assert_tenant_isolation(
    sessions: TenantSessionFactory,
    make: Callable[[], Any],
    *,
    prepare: Callable[[Session], None] | None = None,
) -> None:
    """Assert that the model *make()* builds is isolated between two new tenants.

    *make* returns an unsaved instance of a :class:`~tenancy.TenantScoped` model without
    ``instance_id``; it is called once per tenant so both hold identical-looking rows.
    *prepare* may add rows the instance depends on (parents) in each tenant's session first.
    Checks: each tenant's ORM query sees only its own row; ``get()`` of the other tenant's key
    is ``None``; adding an object with the other tenant's id raises ``CrossTenantWrite``; and on
    PostgreSQL a raw ``text()`` count sees only the tenant's row and the runtime connection
    without a tenant sees none.
    """
    a, b = uuid.uuid4(), uuid.uuid4()
    keys: dict[uuid.UUID, Any] = {}
    model: type[TenantScoped] | None = None
    for tenant in (a, b):
        with sessions.for_instance(tenant) as session:
            if prepare is not None:
                prepare(session)
            obj = make()
            if not isinstance(obj, TenantScoped):
                raise ConfigurationError(
                    f"make() must return a TenantScoped model instance, got {type(obj).__name__}"
                )
            model = type(obj)
            session.add(obj)
            session.commit()
            keys[tenant] = inspect(obj).identity
    assert model is not None
    table = model.__table__  # type: ignore[attr-defined]
    for tenant, other in ((a, b), (b, a)):
        with sessions.for_instance(tenant) as session:
            owners = {
                row.instance_id for row in session.scalars(select(model).where(model.instance_id.in_([a, b])))
            }
            assert owners == {tenant}, f"{model.__name__}: tenant {tenant} sees rows of {owners - {tenant}}"
            assert session.get(model, keys[other]) is None, (
                f"{model.__name__}: get() returned another tenant's row"
            )
            intruder = make()
            intruder.instance_id = other
            try:
                session.add(intruder)
            except CrossTenantWrite:
                pass
            else:  # pragma: no cover - only reached when isolation is broken
                raise AssertionError(f"{model.__name__}: adding another tenant's row did not raise")
            if session.get_bind().dialect.name == "postgresql":
                raw = session.execute(
                    text(f"SELECT count(*) FROM {table.fullname} WHERE instance_id IN (:a, :b)"),
                    {"a": a, "b": b},
                ).scalar_one()
                assert raw == 1, f"{table.fullname}: raw SQL sees {raw} rows of two tenants (RLS missing?)"
    if sessions.engine.dialect.name == "postgresql":
        with sessions.engine.connect() as conn:
            bare = conn.execute(text(f"SELECT count(*) FROM {table.fullname}")).scalar_one()
        assert bare == 0, f"{table.fullname}: a connection without a tenant sees {bare} rows"


def assert_database_isolated(admin_engine: Engine, *, runtime_role: str, schema: str = "public") -> None:
    """Assert that ``tenancy check`` finds nothing for *runtime_role* in *schema*.

    Fails too when there is nothing to audit: no ``tenants`` table or no tenant table besides it.
    """
    with admin_engine.connect() as conn:
        try:
            findings = audit(conn, runtime_role=runtime_role, schema=schema)
        except ConfigurationError as exc:
            raise AssertionError(f"tenancy check could not audit: {exc}") from None
    assert not findings, "tenancy check findings:\n" + "\n".join(str(f) for f in findings)
