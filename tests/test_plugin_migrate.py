"""The pytest plugin migrates exactly the database it created, whatever the user's env.py does."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, inspect, text

from tenancy.errors import ConfigurationError
from tenancy.migrations import VERSION_LOCATIONS_INI
from tenancy.testing.plugin import migrate
from tenancy.testing.postgres import Database

pytestmark = pytest.mark.postgres

README_ENV = """
from alembic import context

import tenancy
import tenancy.migrations

tenancy.migrations.run_migrations(context, target_metadata=tenancy.Base.metadata)
"""


def _project(tmp_path: Path, env_py: str | None) -> Path:
    """`alembic init migrations` in *tmp_path*, with *env_py* as env.py and alembic.ini's
    version_locations as the README says (None: alembic's stock env.py and alembic.ini)."""
    ini = tmp_path / "alembic.ini"
    command.init(Config(str(ini)), str(tmp_path / "migrations"))
    if env_py is not None:
        (tmp_path / "migrations" / "env.py").write_text(env_py)
        stock = ini.read_text()
        assert "\npath_separator = os\n" in stock
        ini.write_text(stock.replace("\npath_separator = os\n", f"\n{VERSION_LOCATIONS_INI}\n", 1))
    return ini


def _tables(db: Database) -> set[str]:
    engine = create_engine(db.admin_url)
    names = set(inspect(engine).get_table_names())
    engine.dispose()
    return names


def test_the_readme_env_py_migrates_the_test_database_and_grants_the_runtime_role(
    empty_pg_database: Database, tmp_path: Path, monkeypatch
) -> None:
    """With the README's env.py: tenants in the test database, the runtime role can read it, and the
    URL in the user's environment (another database) is left alone."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'elsewhere.db'}")
    migrate(_project(tmp_path, README_ENV), empty_pg_database)
    assert {"tenants", "alembic_version"} <= _tables(empty_pg_database)
    assert not (tmp_path / "elsewhere.db").exists() and not (tmp_path / "tenancy.db").exists()
    runtime = create_engine(empty_pg_database.runtime_url)
    with runtime.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM tenants")).scalar_one() == 0
    runtime.dispose()


def test_a_stock_env_py_is_pointed_at_the_test_database_and_fails_loudly(
    empty_pg_database: Database, tmp_path: Path, monkeypatch
) -> None:
    """alembic init's own env.py reads sqlalchemy.url: it migrates the test database (no ./tenancy.db),
    finds no tenants table there and the plugin fails saying what to change."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(pytest.fail.Exception, match=r"did not create the tenants table") as failed:
        migrate(_project(tmp_path, None), empty_pg_database)
    assert "tenancy.migrations.run_migrations(context, target_metadata=...)" in str(failed.value)
    assert "alembic_version" in _tables(empty_pg_database)  # it did run there
    assert not list(tmp_path.glob("*.db"))
    # Its fileConfig() disabled every existing logger; the plugin put them back (caplog works).
    assert not logging.getLogger("tenancy.wix").disabled


def test_an_env_py_that_migrates_another_database_fails_loudly(
    empty_pg_database: Database, tmp_path: Path, monkeypatch
) -> None:
    """An env.py with its own hard-wired URL: the test database stays empty, and the plugin says so."""
    monkeypatch.chdir(tmp_path)
    other = f"sqlite:///{tmp_path / 'app.db'}"
    env_py = README_ENV.replace(
        "tenancy.migrations.run_migrations(",
        f"context.config.attributes.pop('connection', None)\nimport os\nos.environ['DATABASE_URL'] = "
        f"os.environ['TENANCY_ADMIN_DATABASE_URL'] = {other!r}\ntenancy.migrations.run_migrations(",
    )
    with pytest.warns(Warning), pytest.raises(pytest.fail.Exception, match=empty_pg_database.name):
        migrate(_project(tmp_path, env_py), empty_pg_database)
    assert "tenants" not in _tables(empty_pg_database)


def test_an_alembic_ini_without_tenancys_revisions_is_refused_naming_the_lines(
    empty_pg_database: Database, tmp_path: Path, monkeypatch
) -> None:
    """The README's env.py with alembic init's alembic.ini as it is: nothing is migrated, and the
    error gives the exact [alembic] lines that add tenancy's revisions."""
    monkeypatch.chdir(tmp_path)
    ini = _project(tmp_path, README_ENV)
    ini.write_text(ini.read_text().replace(f"\n{VERSION_LOCATIONS_INI}\n", "\npath_separator = os\n"))
    with pytest.raises(ConfigurationError, match="not in Alembic's version_locations") as refused:
        migrate(ini, empty_pg_database)
    assert VERSION_LOCATIONS_INI in str(refused.value)
    assert not {"tenants", "alembic_version"} & _tables(empty_pg_database)
