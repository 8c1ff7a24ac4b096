"""Settings: the one place that knows which environment variables tenancy reads.

The library reads the environment here and nowhere else; the commands and Alembic's ``env.py``
(the program's edge) build a :class:`Settings` with :meth:`Settings.from_env` and pass what it
holds on. The test tooling (:mod:`tenancy.testing`) reads its own two variables,
``TENANCY_TEST_PG_URL`` and ``TENANCY_TEST_POSTGRES``: they choose the PostgreSQL server a test
session starts its throwaway databases on, before any application settings exist, and mean
nothing to a running app.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tenancy.errors import ConfigurationError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

__all__ = [
    "ADMIN_URL_VARIABLE",
    "BINDING_KEY_PATTERN",
    "DEFAULT_WIX_API_BASE_URL",
    "RUNTIME_ROLE_VARIABLE",
    "URL_VARIABLE",
    "Settings",
    "admin_url_variable",
    "no_database_message",
    "normalize_database_url",
    "safe_url",
]

DEFAULT_WIX_API_BASE_URL = "https://www.wixapis.com"
BINDING_KEY_PATTERN = re.compile(r"[0-9]{1,9}:[0-9a-f]{64}")
URL_VARIABLE = "DATABASE_URL"
ADMIN_URL_VARIABLE = "TENANCY_ADMIN_DATABASE_URL"
RUNTIME_ROLE_VARIABLE = "TENANCY_RUNTIME_ROLE"
# What hosts hand out (postgres://, postgresql://) means psycopg 3 here, the driver tenancy ships;
# SQLAlchemy would otherwise look for psycopg2 (or fail on the postgres:// spelling).
_PSYCOPG_SCHEMES = ("postgres://", "postgresql://")


def normalize_database_url(url: str) -> str:
    """``postgres://`` and ``postgresql://`` URLs as ``postgresql+psycopg://``; others unchanged."""
    for scheme in _PSYCOPG_SCHEMES:
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme) :]
    return url


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Connection and Wix settings; build it with :meth:`from_env` at the edge of a program.

    ``database_url`` is the runtime role's URL (tenant sessions);
    ``admin_database_url`` the owner role's (migrations, sync, ``admin()`` sessions; default:
    ``database_url``). There is no default database: unset, whatever needs one raises
    :class:`~tenancy.ConfigurationError` (:meth:`require_database_urls`); ``tenancy demo`` and the
    test tooling start the embedded PostgreSQL instead. A ``sqlite:///FILE`` URL is taken only
    when given explicitly, and runs without the database layer (a :class:`~tenancy.TenancyWarning`).
    ``runtime_role`` names the role ``alembic upgrade heads`` grants what tenant sessions need
    after migrating (``tenancy grant ROLE``); unset, migrations grant nothing.
    """

    database_url: str | None = field(default=None, repr=False)
    admin_database_url: str | None = field(default=None, repr=False)
    wix_app_id: str | None = None
    wix_app_secret: str | None = field(default=None, repr=False)  # never printed
    wix_api_base_url: str = DEFAULT_WIX_API_BASE_URL
    wix_webhook_public_key: str | None = field(default=None, repr=False)
    binding_key: str | None = field(default=None, repr=False)  # a secret: never printed
    runtime_role: str | None = None

    def __post_init__(self) -> None:
        # Imported here: `tenancy --help` and the emulator read this module's constants only.
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        if self.admin_database_url is None:
            object.__setattr__(self, "admin_database_url", self.database_url)
        for name in ("database_url", "admin_database_url"):
            raw = getattr(self, name)
            if raw is None:
                continue
            value = normalize_database_url(raw)
            object.__setattr__(self, name, value)  # frozen: normalized once, here
            try:
                make_url(value)
            except ArgumentError:
                # The URL may hold a password: name the setting, not the value.
                variable = URL_VARIABLE if name == "database_url" else ADMIN_URL_VARIABLE
                raise ConfigurationError(
                    f"{name} ({variable}) is not a database URL: write postgresql://USER@HOST/DB "
                    "or sqlite:///FILE"
                ) from None
        if self.binding_key is not None and not BINDING_KEY_PATTERN.fullmatch(
            self.binding_key.strip().lower()
        ):
            # Name the setting, never the value.
            raise ConfigurationError(
                "binding_key (TENANCY_BINDING_KEY) must look like '<key id>:<64 hex digits>'"
            )
        if not self.wix_api_base_url.startswith(("http://", "https://")):
            raise ConfigurationError(
                f"wix_api_base_url must start with http:// or https://, got {self.wix_api_base_url!r}"
            )

    def require_database_urls(self, job: str) -> tuple[str, str]:
        """``(database_url, admin_database_url)`` for *job*, or a one-line
        :class:`~tenancy.ConfigurationError` saying that no database is configured."""
        if self.database_url is None or self.admin_database_url is None:
            raise ConfigurationError(no_database_message(job))
        return self.database_url, self.admin_database_url

    def require_admin_database_url(self, job: str) -> str:
        """``admin_database_url`` for *job* (the owner's jobs: sync, grant, check, rotate-key), or a
        one-line :class:`~tenancy.ConfigurationError` saying that no database is configured."""
        if self.admin_database_url is None:
            raise ConfigurationError(no_database_message(job))
        return self.admin_database_url

    def __repr__(self) -> str:
        # URLs are shown with their password masked; the secret is never shown.
        urls = (self.database_url, self.admin_database_url)
        url, admin_url = (None if u is None else safe_url(u) for u in urls)
        return (
            f"Settings(database_url={url!r}, "
            f"admin_database_url={admin_url!r}, "
            f"wix_app_id={self.wix_app_id!r}, "
            f"wix_app_secret={'***' if self.wix_app_secret else None!r}, "
            f"wix_api_base_url={self.wix_api_base_url!r}, "
            f"wix_webhook_public_key={'<set>' if self.wix_webhook_public_key else None}, "
            f"binding_key={'***' if self.binding_key else None}, "
            f"runtime_role={self.runtime_role!r})"
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read ``DATABASE_URL``, ``TENANCY_ADMIN_DATABASE_URL``, ``WIX_APP_ID``,
        ``WIX_APP_SECRET``, ``WIX_API_BASE_URL``, ``WIX_WEBHOOK_PUBLIC_KEY``,
        ``TENANCY_BINDING_KEY`` (the database binding key, for web processes without admin
        credentials: pass it as ``TenantSessionFactory(..., binding_key=settings.binding_key)``)
        and ``TENANCY_RUNTIME_ROLE``; empty values count as unset."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        database_url = get(URL_VARIABLE)
        return cls(
            database_url=database_url,
            admin_database_url=get(ADMIN_URL_VARIABLE) or database_url,
            wix_app_id=get("WIX_APP_ID"),
            wix_app_secret=get("WIX_APP_SECRET"),
            wix_api_base_url=(get("WIX_API_BASE_URL") or DEFAULT_WIX_API_BASE_URL).rstrip("/"),
            wix_webhook_public_key=get("WIX_WEBHOOK_PUBLIC_KEY"),
            binding_key=get("TENANCY_BINDING_KEY"),
            runtime_role=get(RUNTIME_ROLE_VARIABLE),
        )


def admin_url_variable(environ: Mapping[str, str] | None = None) -> str:
    """The variable :meth:`Settings.from_env` took the admin URL from, for messages: a fix names
    what to change."""
    env = os.environ if environ is None else environ
    if env.get(ADMIN_URL_VARIABLE, "").strip():
        return ADMIN_URL_VARIABLE
    if env.get(URL_VARIABLE, "").strip():
        return f"{URL_VARIABLE} ({ADMIN_URL_VARIABLE} is unset)"
    return f"{URL_VARIABLE} ({ADMIN_URL_VARIABLE} and {URL_VARIABLE} are unset)"


def no_database_message(job: str) -> str:
    """One line: *job* needs a database and none is configured, and how to give it one."""
    return (
        f"{job} needs a database and none is configured: set {URL_VARIABLE} to the runtime role's "
        f"postgresql://USER@HOST/DB and {ADMIN_URL_VARIABLE} to the owner role's "
        "(`tenancy demo` needs neither: it starts an embedded PostgreSQL)"
    )


def safe_url(url: str | URL) -> str:
    """*url* with its password masked: how tenancy shows a database URL in a message or ``repr``."""
    # Imported here: `tenancy --help` must not load SQLAlchemy (tests/test_public_api.py).
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
