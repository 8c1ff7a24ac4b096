"""Alembic for tenancy: what your ``env.py`` and migrations import, and tenancy's own revisions.

Importing it registers the operations ``op.enable_tenant_isolation``,
``op.disable_tenant_isolation``, ``op.distribute_tenant_table`` and
``op.undistribute_tenant_table`` (Citus). Your whole ``env.py``::

    from alembic import context
    import tenancy.migrations
    from myapp.models import Base

    tenancy.migrations.run_migrations(context, target_metadata=Base.metadata)

:func:`run_migrations` (:mod:`.environment`) adds tenancy's own revisions (``versions/``, the
``tenants`` table, branch ``tenancy``), the autogenerate rewriter (:data:`writer`, in
:mod:`.operations`) and the runtime-role grant. ``env.py`` here migrates a database to
tenancy's head alone (``script_location = tenancy:migrations``).
"""

from __future__ import annotations

from tenancy.migrations.environment import BRANCH, TENANCY_VERSIONS, database_url, run_migrations
from tenancy.migrations.operations import (
    DisableTenantIsolationOp,
    DistributeTenantTableOp,
    EnableTenantIsolationOp,
    UndistributeTenantTableOp,
    writer,
)

__all__ = [
    "BRANCH",
    "TENANCY_VERSIONS",
    "DisableTenantIsolationOp",
    "DistributeTenantTableOp",
    "EnableTenantIsolationOp",
    "UndistributeTenantTableOp",
    "database_url",
    "run_migrations",
    "writer",
]
