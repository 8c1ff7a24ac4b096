"""tenancy: multi-tenant data access for a Wix app's self-hosted Python backend.

Tenant-scoped SQLAlchemy sessions enforced twice (ORM criteria and PostgreSQL row-level
security), Alembic migrations that put every tenant table under isolation, a Wix client
with a token resolver, and a sync job that keeps the ``tenants`` table fresh.
"""

from __future__ import annotations

from tenancy.db.async_sessions import AsyncTenantSessionFactory
from tenancy.db.isolation import disable_isolation, enable_isolation
from tenancy.db.models import Base, Tenant, TenantScoped, mark_tenant_table, tenant_foreign_key
from tenancy.db.sessions import TenantSession, TenantSessionFactory
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
    TenantRemoved,
    WixAuthError,
    WixError,
    WixInstanceNotAccessible,
    WixRateLimited,
    WixUnavailable,
)
from tenancy.log_context import InstanceIdFilter, log_instance_ids
from tenancy.settings import Settings
from tenancy.tenant_sync.events import apply_event
from tenancy.tenant_sync.job import sync
from tenancy.tenant_sync.report import SyncReport
from tenancy.wix.client import WixClient
from tenancy.wix.resolver import TokenResolver
from tenancy.wix.types import AppInstance, TokenInfo
from tenancy.wix.webhooks import WebhookVerifier, WixEvent

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
    "TenantRemoved",
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
