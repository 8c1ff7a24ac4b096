"""Tests of the ORM layer (tenancy.orm), the database layer (tenancy.postgres) and migrations."""
