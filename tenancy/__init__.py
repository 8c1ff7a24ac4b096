"""tenancy: multi-tenant data access for a Wix app's self-hosted Python backend.

Tenant-scoped SQLAlchemy sessions enforced twice (ORM criteria and PostgreSQL row-level
security), Alembic migrations that put every tenant table under isolation, a Wix client
with a token resolver, and a sync job that keeps the ``tenants`` table fresh.
"""

from __future__ import annotations

import importlib
import typing

# The errors are tiny and every module raises them: loaded at once (their __module__ is
# "tenancy", so they must be attributes from the start).
from tenancy.errors import (
    ConfigurationError,
    CrossTenantAccess,
    CrossTenantWrite,
    DuplicateInTenant,
    InvalidInstanceId,
    InvalidToken,
    InvalidWebhook,
    TenancyError,
    TenancyWarning,
    WixAuthError,
    WixError,
    WixInstanceNotAccessible,
    WixRateLimited,
    WixUnavailable,
)

if typing.TYPE_CHECKING:  # what type checkers and IDEs see; at run time each name loads on first use
    from tenancy.log_context import InstanceIdFilter, log_instance_ids
    from tenancy.models import Base, TenantScoped, mark_tenant_table, tenant_foreign_key
    from tenancy.orm.async_sessions import AsyncTenantSessionFactory
    from tenancy.orm.sessions import TenantSession, TenantSessionFactory
    from tenancy.postgres.isolation import disable_isolation, enable_isolation
    from tenancy.settings import Settings
    from tenancy.tenant_sync.events import apply_event
    from tenancy.tenant_sync.job import sync
    from tenancy.tenant_sync.report import SyncReport
    from tenancy.tenants.model import Tenant
    from tenancy.wix.client import WixClient
    from tenancy.wix.resolver import TokenResolver
    from tenancy.wix.types import AppInstance, TokenInfo
    from tenancy.wix.webhooks import WebhookVerifier, WixEvent

# Public name -> the module that defines it. `import tenancy` stays cheap (no SQLAlchemy ORM,
# psycopg, requests or cryptography) so that `tenancy --help`, the emulator and scripts that
# only need a few names start fast; a name's module is imported the first time it is used.
_LAZY: dict[str, str] = {
    "AppInstance": "tenancy.wix.types",
    "AsyncTenantSessionFactory": "tenancy.orm.async_sessions",
    "Base": "tenancy.models",
    "InstanceIdFilter": "tenancy.log_context",
    "Settings": "tenancy.settings",
    "SyncReport": "tenancy.tenant_sync.report",
    "Tenant": "tenancy.tenants.model",
    "TenantScoped": "tenancy.models",
    "TenantSession": "tenancy.orm.sessions",
    "TenantSessionFactory": "tenancy.orm.sessions",
    "TokenInfo": "tenancy.wix.types",
    "TokenResolver": "tenancy.wix.resolver",
    "WebhookVerifier": "tenancy.wix.webhooks",
    "WixClient": "tenancy.wix.client",
    "WixEvent": "tenancy.wix.webhooks",
    "apply_event": "tenancy.tenant_sync.events",
    "disable_isolation": "tenancy.postgres.isolation",
    "enable_isolation": "tenancy.postgres.isolation",
    "log_instance_ids": "tenancy.log_context",
    "mark_tenant_table": "tenancy.models",
    "sync": "tenancy.tenant_sync.job",
    "tenant_foreign_key": "tenancy.models",
}


def __getattr__(name: str) -> typing.Any:
    """Load a public name's module on first use (PEP 562); later lookups find the attribute."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tenancy' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "AppInstance",
    "AsyncTenantSessionFactory",
    "Base",
    "ConfigurationError",
    "CrossTenantAccess",
    "CrossTenantWrite",
    "DuplicateInTenant",
    "InstanceIdFilter",
    "InvalidInstanceId",
    "InvalidToken",
    "InvalidWebhook",
    "Settings",
    "SyncReport",
    "TenancyError",
    "TenancyWarning",
    "Tenant",
    "TenantScoped",
    "TenantSession",
    "TenantSessionFactory",
    "TokenInfo",
    "TokenResolver",
    "WebhookVerifier",
    "WixAuthError",
    "WixClient",
    "WixError",
    "WixEvent",
    "WixInstanceNotAccessible",
    "WixRateLimited",
    "WixUnavailable",
    "apply_event",
    "disable_isolation",
    "enable_isolation",
    "log_instance_ids",
    "mark_tenant_table",
    "sync",
    "tenant_foreign_key",
]
