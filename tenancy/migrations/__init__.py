"""tenancy's own Alembic migrations (the ``tenants`` table), shipped inside the package.

Its revisions (``versions/``, branch label ``tenancy``) join your migrations when your
``env.py`` calls :func:`tenancy.alembic_ops.run_migrations`. ``env.py`` here migrates a database
to tenancy's head alone (``script_location = tenancy:migrations``; ``tenancy demo`` does that).
"""
