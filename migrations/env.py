"""Alembic environment of this repository, and the model of yours (README: Your own app).

alembic.ini's ``version_locations`` add tenancy's own revisions (the ``tenants`` table, shipped
in the package; ``run_migrations`` refuses to run without them); ``run_migrations`` connects as
the owner role (``TENANCY_ADMIN_DATABASE_URL``, else ``DATABASE_URL``, else
alembic.ini's ``sqlalchemy.url``, else the command exits 2 saying so) or uses the connection in
``config.attributes["connection"]``, emits ``op.enable_tenant_isolation`` for new tenant tables
on autogenerate, and grants ``TENANCY_RUNTIME_ROLE`` (if set) what tenant sessions need.
"""

from alembic import context

import tenancy
import tenancy.migrations

# Your models' metadata: import the module that defines them, then pass its Base.metadata.
target_metadata = tenancy.Base.metadata

tenancy.migrations.run_migrations(context, target_metadata=target_metadata)
