"""PostgreSQL enforcement: what the database itself guarantees, whatever SQL reaches it.

:mod:`.binding` is the sealed tenant binding (key, seal, the ``tenancy`` schema's functions);
:mod:`.psycopg_begin` sends it in the same round trip as ``BEGIN``; :mod:`.isolation` puts a
table under row-level security; :mod:`.roles` grants the runtime role; :mod:`.audit` checks a
live database (``tenancy check``). Citus is a variant of the same binding and audit:
:mod:`.citus` (distribution, propagation, shard audits) and :mod:`.citus_binding`.

Imports: only the top-level modules (:mod:`tenancy.models` says which tables are tenant tables).
"""
