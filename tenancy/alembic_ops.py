"""Forwards to :mod:`tenancy.db.alembic_ops`, the import path the README and env.py use.

Importing it registers the Alembic operations ``op.enable_tenant_isolation`` and
``op.disable_tenant_isolation``, ``op.distribute_tenant_table`` and
``op.undistribute_tenant_table``; pass :func:`writer` as ``process_revision_directives``.
"""

from __future__ import annotations

from tenancy.db.alembic_ops import (
    DisableTenantIsolationOp,
    DistributeTenantTableOp,
    EnableTenantIsolationOp,
    UndistributeTenantTableOp,
    writer,
)

__all__ = [
    "DisableTenantIsolationOp",
    "DistributeTenantTableOp",
    "EnableTenantIsolationOp",
    "UndistributeTenantTableOp",
    "writer",
]
