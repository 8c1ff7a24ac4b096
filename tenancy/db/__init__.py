"""The database layer: models, the two isolation layers, sessions, roles and the audit.

The request flow ends here: :mod:`.sessions` (and :mod:`.async_sessions`) build a session bound
to one tenant; :mod:`.guard` is the ORM layer of isolation and :mod:`.isolation` the PostgreSQL
row-level security policy; :mod:`.psycopg_begin` sends the tenant binding with ``BEGIN``;
:mod:`.translate` maps database errors to tenancy's; :mod:`.registration` records tenants that
tokens reveal; :mod:`.roles` grants the runtime role; :mod:`.audit` checks a live database;
:mod:`.alembic_ops` gives migrations the isolation operations.

Imports: only :mod:`tenancy.errors`, :mod:`tenancy.settings` and :mod:`tenancy.instance_ids`
from outside this folder. Nothing here knows about Wix or the sync.
"""
