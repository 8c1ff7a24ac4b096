"""A tenant's life after install (README: Tenant lifecycle), on the admin engine.

Retention and purge (:func:`purge`), erasure on request (``purge(..., immediately=True)``),
export on request (:func:`export_tenant`) and a duplicated site's data (:func:`copy_from_origin`,
:func:`copy_pending`), all over every tenant table found once (:func:`discover`).
"""

from tenancy.lifecycle.duplicate import (
    CopyReport,
    TenantCopy,
    copy_from_origin,
    copy_pending,
    exclude_from_copy,
)
from tenancy.lifecycle.export import ExportManifest, export_tenant
from tenancy.lifecycle.purge import DEFAULT_RETENTION, PurgeReport, TenantPurge, count_rows, purge
from tenancy.lifecycle.tables import TenantTables, discover

__all__ = [
    "DEFAULT_RETENTION",
    "CopyReport",
    "ExportManifest",
    "PurgeReport",
    "TenantCopy",
    "TenantPurge",
    "TenantTables",
    "copy_from_origin",
    "copy_pending",
    "count_rows",
    "discover",
    "exclude_from_copy",
    "export_tenant",
    "purge",
]
