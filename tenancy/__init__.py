"""tenancy: multi-tenant data access for a Wix app's self-hosted Python backend.

Tenant-scoped SQLAlchemy sessions enforced twice (ORM criteria and PostgreSQL row-level
security), Alembic migrations that put every tenant table under isolation, a Wix client
with a token resolver, and a sync job that keeps the ``tenants`` table fresh.
"""

from __future__ import annotations

from tenancy.async_sessions import AsyncTenantSessionFactory
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
from tenancy.isolation import disable_isolation, enable_isolation
from tenancy.models import Base, Tenant, TenantScoped, mark_tenant_table, tenant_foreign_key
from tenancy.resolver import TokenResolver
from tenancy.sessions import TenantSession, TenantSessionFactory
from tenancy.settings import Settings
from tenancy.sync import sync
from tenancy.sync_report import SyncReport
from tenancy.tenant_events import apply_event
from tenancy.webhooks import WebhookVerifier, WixEvent
from tenancy.wix import WixClient
from tenancy.wix_types import AppInstance, TokenInfo

__all__ = [
    "AppInstance",
    "AsyncTenantSessionFactory",
    "Base",
    "ConfigurationError",
    "CrossTenantAccess",
    "CrossTenantWrite",
    "DuplicateInTenant",
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
    "mark_tenant_table",
    "sync",
    "tenant_foreign_key",
]
