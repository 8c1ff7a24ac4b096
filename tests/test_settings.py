"""Settings read the environment at the edge and never print secrets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import tenancy


def test_no_database_by_default_and_real_wix() -> None:
    """With nothing set there is no database (no silent SQLite file) and Wix is wixapis.com;
    whatever needs a database says so in one line."""
    settings = tenancy.Settings.from_env(environ={})
    assert settings.database_url is None and settings.admin_database_url is None
    assert settings.wix_api_base_url == "https://www.wixapis.com"
    assert settings.wix_app_id is None and settings.wix_app_secret is None
    with pytest.raises(tenancy.ConfigurationError) as caught:
        settings.require_database_urls("the job")
    message = str(caught.value)
    assert message.startswith("the job needs a database and none is configured")
    assert "DATABASE_URL" in message and "\n" not in message
    assert "sqlite" not in message.lower()


def test_admin_url_defaults_to_the_runtime_url() -> None:
    """TENANCY_ADMIN_DATABASE_URL falls back to DATABASE_URL."""
    env = {"DATABASE_URL": "postgresql+psycopg://app@db/x"}
    assert tenancy.Settings.from_env(environ=env).admin_database_url == env["DATABASE_URL"]
    env["TENANCY_ADMIN_DATABASE_URL"] = "postgresql+psycopg://owner@db/x"
    assert tenancy.Settings.from_env(environ=env).admin_database_url == "postgresql+psycopg://owner@db/x"


def test_repr_hides_the_secret_and_passwords() -> None:
    """repr() shows neither the app secret nor database passwords."""
    settings = tenancy.Settings.from_env(
        environ={
            "DATABASE_URL": "postgresql+psycopg://app:pw-SECRET-1@db/x",
            "WIX_APP_ID": "11111111-2222-3333-4444-555555555555",
            "WIX_APP_SECRET": "app-SECRET-2",
        }
    )
    text = repr(settings) + str(settings)
    assert "pw-SECRET-1" not in text and "app-SECRET-2" not in text
    assert "11111111-2222-3333-4444-555555555555" in text


@pytest.mark.parametrize(
    ("name", "value"),
    [("DATABASE_URL", "not a url"), ("WIX_API_BASE_URL", "ftp://wix.example")],
)
def test_bad_values_raise_configuration_error(name: str, value: str) -> None:
    """A malformed URL is a ConfigurationError naming the setting."""
    with pytest.raises(tenancy.ConfigurationError, match=name.lower()):
        tenancy.Settings.from_env(environ={name: value})


@pytest.mark.parametrize(
    "url",
    ["postgres://app:pw@db:5432/x", "postgresql://app:pw@db:5432/x", "postgresql+psycopg://app:pw@db:5432/x"],
)
def test_postgres_urls_use_psycopg(url: str) -> None:
    """The URLs hosts hand out (postgres://, postgresql://) select psycopg 3, the driver tenancy ships."""
    settings = tenancy.Settings.from_env(environ={"DATABASE_URL": url, "TENANCY_ADMIN_DATABASE_URL": url})
    assert settings.database_url == "postgresql+psycopg://app:pw@db:5432/x"
    assert settings.admin_database_url == "postgresql+psycopg://app:pw@db:5432/x"
    from sqlalchemy import create_engine

    assert create_engine(settings.database_url).dialect.driver == "psycopg"


def test_the_binding_key_comes_from_the_environment_and_is_never_shown() -> None:
    """TENANCY_BINDING_KEY is read, validated without echoing it, and masked in repr()."""
    key = "3:" + "ab" * 32
    settings = tenancy.Settings.from_env({"TENANCY_BINDING_KEY": key})
    assert settings.binding_key == key
    assert "ab" * 32 not in repr(settings) + str(settings)
    assert "binding_key=***" in repr(settings)
    with pytest.raises(tenancy.ConfigurationError, match="TENANCY_BINDING_KEY") as err:
        tenancy.Settings.from_env({"TENANCY_BINDING_KEY": "not-a-key-" + "cd" * 32})
    assert "cd" * 16 not in str(err.value)


def test_the_runtime_role_for_migrations_is_a_setting() -> None:
    """TENANCY_RUNTIME_ROLE (the role `alembic upgrade heads` grants) is read by from_env; blank is unset."""
    assert tenancy.Settings.from_env({"TENANCY_RUNTIME_ROLE": " app_rt "}).runtime_role == "app_rt"
    assert tenancy.Settings.from_env({"TENANCY_RUNTIME_ROLE": "  "}).runtime_role is None
    assert tenancy.Settings.from_env({}).runtime_role is None


def test_settings_is_the_only_reader_of_the_environment() -> None:
    """No library module reads os.environ but settings.py (the test tooling in tenancy/testing/
    reads its own variables, as the Settings docstring says), so the README's table is complete."""
    package = Path(tenancy.__file__).parent
    readers = sorted(
        path.relative_to(package).as_posix()
        for path in package.rglob("*.py")
        if path.relative_to(package).parts[0] != "testing" and re.search(r"os\.environ|getenv", _code(path))
    )
    assert readers == ["settings.py"]


def _code(path: Path) -> str:
    """The source without comments (a comment may mention os.environ)."""
    return "\n".join(line.split("#", 1)[0] for line in path.read_text().splitlines())
