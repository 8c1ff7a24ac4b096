"""Settings read the environment at the edge and never print secrets."""

from __future__ import annotations

import pytest

import tenancy
from tenancy.settings import DEFAULT_DATABASE_URL


def test_defaults_are_the_embedded_sqlite_file_and_real_wix() -> None:
    """With nothing set, the runtime and admin URLs are the SQLite default and Wix is wixapis.com."""
    settings = tenancy.Settings.from_env(environ={})
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert settings.admin_database_url == DEFAULT_DATABASE_URL
    assert settings.wix_api_base_url == "https://www.wixapis.com"
    assert settings.wix_app_id is None and settings.wix_app_secret is None


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
