"""The ``tenants`` table and how a tenant enters it.

:mod:`.model` is the table (Wix's facts about an instance, the sync's bookkeeping);
:mod:`.registration` records a tenant that a valid token reveals, through the database's own
``tenancy.register_tenant`` function (:mod:`tenancy.postgres.binding`).

Imports: :mod:`tenancy.postgres` and the top-level modules.
"""
