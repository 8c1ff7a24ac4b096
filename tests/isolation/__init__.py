"""Isolation battery: the scenarios of ISOLATION.md against real PostgreSQL and SQLite.

Every test is named ``test_sNN_...`` after the scenario it proves (``pytest -k s47``). Tests
taking ``env`` run on PostgreSQL (runtime role: not superuser, not BYPASSRLS, owns nothing)
and on SQLite, where the ORM guard is the only layer; on PostgreSQL they also run raw SQL as
the runtime role, which proves row-level security alone. Tests taking ``pg`` need RLS.

Equivalents and gaps, by scenario:

- all: AsyncSession is not built yet, so nothing runs on it; 47 runs sync sessions in asyncio
  tasks instead.
- 46: no PgBouncer here; two tenants interleave transactions on one backend connection
  (``pool_size=1``), which is what transaction pooling does to them.
- 48, 49: no Celery/Django; threads and a one-thread executor stand in for tasks and workers.
- 53, 55: ``tenancy check`` is not in the tree yet; the tests ask the catalogs directly.
- 57: the Wix token resolver is not in the tree yet; a resolver with a fixed token table
  stands in, and the tests hold what the factory does with its answers.
- 42: a duplicate inside a tenant raises tenancy.DuplicateInTenant (from the per-tenant constraint).
"""
