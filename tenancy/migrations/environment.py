"""The body of an Alembic ``env.py``: your migrations plus tenancy's, isolation, and the grant.

Your ``env.py`` is one call (README: Your own app)::

    from alembic import context
    import tenancy.migrations
    from myapp.models import Base

    tenancy.migrations.run_migrations(context, target_metadata=Base.metadata)

Your ``alembic.ini`` lists tenancy's revisions (``tenancy/migrations/versions``, branch label
``tenancy``) beside yours in Alembic's ``version_locations`` (:data:`VERSION_LOCATIONS_INI`);
:func:`run_migrations` refuses to run without them, connects as the owner role, autogenerates
``op.enable_tenant_isolation(...)`` for new tenant tables, puts your new revisions on your own
branch (in your ``versions/``: ``alembic upgrade heads`` runs both branches), leaves tenancy's own
tables to tenancy's revisions, and afterwards grants the runtime role named by
``TENANCY_RUNTIME_ROLE`` (or ``config.attributes["runtime_role"]``) what tenant sessions need.
Like a stock ``env.py`` it first configures logging from ``alembic.ini`` (:func:`configure_logging`).
"""

from __future__ import annotations

import configparser
import logging
import sys
from collections.abc import Iterable
from logging.config import fileConfig
from pathlib import Path
from types import ModuleType
from typing import Any, TypeAlias

from alembic.config import Config
from alembic.environment import EnvironmentContext
from alembic.operations import ops
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import coerce_resource_to_filename
from sqlalchemy import Connection, MetaData, create_engine, pool

from tenancy.errors import ConfigurationError
from tenancy.migrations.operations import writer
from tenancy.models import TENANTS_TABLE
from tenancy.postgres.isolation import warn_without_rls
from tenancy.postgres.roles import grant_runtime_role
from tenancy.settings import (
    Settings,
    no_database_message,
    normalize_database_url,
)

__all__ = [
    "BRANCH",
    "TENANCY_VERSIONS",
    "TENANCY_VERSIONS_RESOURCE",
    "VERSION_LOCATIONS_INI",
    "configure_logging",
    "database_url",
    "library_config",
    "run_library_migrations",
    "run_migrations",
]

BRANCH = "tenancy"
"""The branch label of tenancy's revisions (``alembic upgrade tenancy@head`` migrates only them)."""
TENANCY_VERSIONS = Path(__file__).resolve().parents[1] / "migrations" / "versions"
"""Where tenancy's revisions live inside the installed package."""
TENANCY_VERSIONS_RESOURCE = "tenancy:migrations/versions"
"""The same folder as Alembic's ``version_locations`` accepts it (a package resource)."""
VERSION_LOCATIONS_INI = f"""\
path_separator = newline
version_locations =
    %(here)s/migrations/versions
    {TENANCY_VERSIONS_RESOURCE}"""
"""The ``[alembic]`` lines of an app's alembic.ini (instead of ``path_separator = os``, whose ``:``
on Linux would split the resource name) that put tenancy's revisions beside the app's own."""
_OWN_TABLES = frozenset({TENANTS_TABLE})
_PLACEHOLDER_URL = "driver://"  # what `alembic init` writes into alembic.ini

Context: TypeAlias = EnvironmentContext | ModuleType
"""``from alembic import context`` in env.py (a module that proxies the EnvironmentContext)."""


def database_url(context: Context) -> str:
    """The owner role's URL: ``TENANCY_ADMIN_DATABASE_URL``, else ``DATABASE_URL``, else the
    ``sqlalchemy.url`` of alembic.ini (unless it is ``alembic init``'s placeholder).

    With none of them there is nothing to migrate: from the ``alembic`` command line that is one
    line on stderr and exit 2; called from Python, a :class:`~tenancy.ConfigurationError`.
    """
    url = Settings.from_env().admin_database_url
    if url is None:
        ini_url = (context.config.get_main_option("sqlalchemy.url") or "").strip()
        if ini_url and not ini_url.startswith(_PLACEHOLDER_URL):
            return normalize_database_url(ini_url)
        message = no_database_message("alembic") + " (or sqlalchemy.url in alembic.ini)"
        if context.config.cmd_opts is not None:  # the alembic command line: no traceback
            print(f"tenancy: {message}", file=sys.stderr)
            raise SystemExit(2)
        raise ConfigurationError(message)
    return url


def configure_logging(config: Config) -> None:
    """Logging from the config file's ``[loggers]``/``[handlers]``/``[formatters]``, as a stock
    Alembic ``env.py`` does (``alembic upgrade`` then prints each revision it runs).

    Left alone when there is no config file or it has no ``[loggers]`` section, and when the
    caller configured logging already (the root logger has handlers: a program, pytest): a
    command run from your code must not reset your logging. Loggers that exist keep working
    (``disable_existing_loggers=False``).
    """
    path = config.config_file_name
    if path is None or logging.getLogger().handlers:
        return
    parser = configparser.ConfigParser()
    parser.read(path)
    if parser.has_section("loggers"):
        fileConfig(path, disable_existing_loggers=False)


def run_migrations(context: Context, *, target_metadata: MetaData | None, **configure_options: Any) -> None:
    """Run your migrations and tenancy's, from your ``env.py``; see the module docstring.

    *configure_options* go to ``context.configure`` (``process_revision_directives`` and
    ``include_object`` are chained after tenancy's own). A connection handed in through
    ``config.attributes["connection"]`` is used as is (tests, ``tenancy``'s pytest plugin).
    """
    configure_logging(context.config)
    _require_tenancy_versions(context.script)
    user_directives = configure_options.pop("process_revision_directives", None)
    user_filter = configure_options.pop("include_object", None)

    def directives(ctx: MigrationContext, revision: Any, scripts: list[ops.MigrationScript]) -> None:
        _place_on_own_branch(context.script, scripts)
        writer(ctx, revision, scripts)
        if user_directives is not None:
            user_directives(ctx, revision, scripts)

    def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
        if table in _OWN_TABLES:
            return False  # tenancy's revisions own these tables
        return user_filter is None or bool(user_filter(obj, name, type_, reflected, compare_to))

    options = {"process_revision_directives": directives, "include_object": include_object}
    _run(context, target_metadata, {**options, **configure_options})


def library_config() -> Config:
    """An Alembic config of tenancy's own script directory (tenancy's tables and revisions alone)."""
    config = Config()
    config.set_main_option("script_location", str(TENANCY_VERSIONS.parent))
    return config


def run_library_migrations(context: Context) -> None:
    """``env.py`` of tenancy's own script directory: tenancy's tables and revisions alone."""
    from tenancy.models import Base

    _run(context, Base.metadata, {"process_revision_directives": writer})


def _run(context: Context, target_metadata: MetaData | None, options: dict[str, Any]) -> None:
    options.setdefault("compare_type", True)
    if context.is_offline_mode():
        context.configure(
            url=database_url(context),
            target_metadata=target_metadata,
            literal_binds=True,
            dialect_opts={"paramstyle": "named"},
            **options,
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _migrate(context, connection, target_metadata, options)
        return
    engine = create_engine(database_url(context), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            _migrate(context, connection, target_metadata, options)
    finally:
        engine.dispose()


def _migrate(
    context: Context,
    connection: Connection,
    target_metadata: MetaData | None,
    options: dict[str, Any],
) -> None:
    warn_without_rls(connection.dialect.name, stacklevel=4)  # off PostgreSQL: the ORM layer alone
    # SQLite cannot ALTER constraints in place; batch mode rebuilds tables there.
    options.setdefault("render_as_batch", connection.dialect.name == "sqlite")
    context.configure(connection=connection, target_metadata=target_metadata, **options)
    with context.begin_transaction():
        context.run_migrations()
        # The test plugin passes its role in the config; an app sets TENANCY_RUNTIME_ROLE.
        role = context.config.attributes.get("runtime_role") or Settings.from_env().runtime_role
        role = (role or "").strip()
        if role and connection.dialect.name == "postgresql":
            for statement in grant_runtime_role(connection, role):
                # The owner may not set another role's defaults (no CREATEROLE): `tenancy check`
                # reports the missing timeout; this says what to run.
                logging.getLogger("tenancy.grant").warning(
                    "runtime role timeout not set (needs CREATEROLE): run as a superuser: %s", statement
                )


def _require_tenancy_versions(script: ScriptDirectory) -> None:
    """Refuse to migrate when alembic.ini's ``version_locations`` leave out tenancy's revisions.

    Alembic reads them before env.py runs; without them ``upgrade heads`` would migrate your
    tables and never create ``tenants`` or the binding.
    """
    if any(_resolve(location) == TENANCY_VERSIONS for location in script.version_locations or []):
        return
    raise ConfigurationError(
        "tenancy's revisions are not in Alembic's version_locations: in alembic.ini's [alembic] "
        "section, replace `path_separator = os` with these lines (README: Your own app):\n"
        f"{VERSION_LOCATIONS_INI}"
    )


def _resolve(location: str) -> Path:
    return coerce_resource_to_filename(location).resolve()


def _place_on_own_branch(script: ScriptDirectory, scripts: Iterable[ops.MigrationScript]) -> None:
    """A new revision without ``--head`` goes on the app's own branch, in the app's versions/.

    Without this Alembic would put the first one after tenancy's head, in tenancy's folder
    inside site-packages, and a later tenancy release would fork the history.
    """
    heads = script.get_revisions("heads")
    own = [h for h in heads if h is not None and not _is_tenancy(h.path)]
    folders = [_resolve(location) for location in script.version_locations or []]
    folder = next((path for path in folders if path != TENANCY_VERSIONS), None)
    for migration in scripts:
        if migration.head not in (None, "head") or len(own) > 1:
            continue  # `--head` chose, or several heads of yours: Alembic asks you to choose
        # The first revision of yours starts a branch of its own, with no dependency on
        # tenancy's revisions: each side's history stays its own.
        migration.head = own[0].revision if own else "base"
        if migration.version_path is None and folder is not None:
            migration.version_path = str(folder)


def _is_tenancy(path: str) -> bool:
    return Path(path).resolve().parent == TENANCY_VERSIONS
