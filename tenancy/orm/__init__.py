"""The ORM layer: sessions bound to one tenant, and what they enforce themselves.

The request flow ends here: :mod:`.sessions` (and :mod:`.async_sessions`) build a session bound
to one tenant, fixed at creation; :mod:`.guard` adds the tenant's criteria to every ORM
statement and refuses writes that could reach another tenant; :mod:`.translate` maps database
errors to tenancy's; :mod:`._sqlalchemy_private` is the only module that touches SQLAlchemy's
private names (each with its reason; canaried by ``tests/db/test_sqlalchemy_private.py``). The
database's own layer (row-level security, the sealed binding) is :mod:`tenancy.postgres`; a
tenant a token reveals is registered by :mod:`tenancy.tenants`.

Imports: :mod:`tenancy.postgres`, :mod:`tenancy.tenants` and the top-level modules. Nothing
here knows Wix.
"""
