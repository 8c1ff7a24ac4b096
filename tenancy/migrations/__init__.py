"""Alembic for tenancy: what your ``env.py`` and migrations import, and tenancy's own revisions.

Importing it registers the operations ``op.enable_tenant_isolation``,
``op.disable_tenant_isolation``, ``op.distribute_tenant_table`` and
``op.undistribute_tenant_table`` (Citus). Your whole ``env.py``::

    from alembic import context
    import tenancy.migrations
    from myapp.models import Base

    tenancy.migrations.run_migrations(context, target_metadata=Base.metadata)

and in your ``alembic.ini`` tenancy's own revisions (``versions/``, the ``tenants`` table and the
``tenancy`` schema, branch ``tenancy``) beside yours: :data:`VERSION_LOCATIONS_INI`.
:func:`run_migrations` (:mod:`.environment`) checks that they are there, adds the autogenerate
rewriter (:data:`writer`, in :mod:`.operations`) and the runtime-role grant. tenancy's revisions
are frozen: SQL text, no import of tenancy. ``env.py`` here migrates a database to
tenancy's head alone (``script_location = tenancy:migrations``).
"""

from __future__ import annotations

from tenancy.migrations.environment import (
    BRANCH,
    TENANCY_VERSIONS,
    TENANCY_VERSIONS_RESOURCE,
    VERSION_LOCATIONS_INI,
    database_url,
    run_migrations,
)
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
    "TENANCY_VERSIONS_RESOURCE",
    "VERSION_LOCATIONS_INI",
    "DisableTenantIsolationOp",
    "DistributeTenantTableOp",
    "EnableTenantIsolationOp",
    "UndistributeTenantTableOp",
    "database_url",
    "run_migrations",
    "writer",
]
