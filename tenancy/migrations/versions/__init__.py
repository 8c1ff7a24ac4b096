"""tenancy's revisions (a package so that the wheel ships them; Alembic skips this file)."""
