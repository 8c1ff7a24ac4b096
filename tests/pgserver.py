"""The suite's PostgreSQL helpers live in the package (tenancy.testing.postgres) for users too."""

from tenancy.testing.postgres import HOW_TO_GET_ONE, Database, fresh_database, server_url, sqlalchemy_url

__all__ = ["HOW_TO_GET_ONE", "Database", "fresh_database", "server_url", "sqlalchemy_url"]
