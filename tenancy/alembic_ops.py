"""What your Alembic ``env.py`` and migrations use (forwards to :mod:`tenancy.db`).

Importing it registers the operations ``op.enable_tenant_isolation``,
``op.disable_tenant_isolation``, ``op.distribute_tenant_table`` and
``op.undistribute_tenant_table`` (Citus). Your whole ``env.py``::

    from alembic import context
    import tenancy.alembic_ops
    from myapp.models import Base

    tenancy.alembic_ops.run_migrations(context, target_metadata=Base.metadata)

:func:`run_migrations` adds tenancy's own revisions (the ``tenants`` table, branch ``tenancy``),
the autogenerate rewriter (:data:`writer`) and the runtime-role grant; see
:mod:`tenancy.db.alembic_env`.
"""

from __future__ import annotations

from tenancy.db.alembic_env import BRANCH, TENANCY_VERSIONS, database_url, run_migrations
from tenancy.db.alembic_ops import (
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
