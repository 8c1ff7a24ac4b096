"""Errors raised by tenancy.

Every error derives from one root, so ``except tenancy.TenancyError`` catches all
of them. Messages name the problem and never contain a secret or a token::

    TenancyError
     ├─ ConfigurationError          settings, engines, roles or arguments are unusable
     ├─ InvalidInstanceId           not a UUID (before any SQL runs)
     ├─ InvalidToken                Wix refused the token, or it is malformed
     │   └─ TenantRemoved           the token's tenant was removed (AppRemoved); no session
     ├─ InvalidWebhook              a webhook body that is not a valid, signed Wix event
     ├─ CrossTenantAccess           a row of another tenant reached a tenant session
     │   └─ CrossTenantWrite        a write would touch another tenant's rows
     ├─ DuplicateInTenant (.constraint)  a per-tenant unique constraint refused a write
     ├─ LifecycleError              purge, export or copy cannot run safely (names the tables)
     └─ WixError (.status, .request_id)
         ├─ WixUnavailable          unreachable, timed out or 5xx after retries
         ├─ WixRateLimited          429 after retries
         └─ WixAuthError            the token endpoint refused the app's credentials
             └─ WixInstanceNotAccessible  Wix refused this one instance: the token endpoint
                                          (4xx other than 429, e.g. app removed) or Get App
                                          Instance (401/403/404)
"""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "CrossTenantAccess",
    "CrossTenantWrite",
    "DuplicateInTenant",
    "InvalidInstanceId",
    "InvalidToken",
    "InvalidWebhook",
    "LifecycleError",
    "TenancyError",
    "TenancyWarning",
    "TenantRemoved",
    "WixAuthError",
    "WixError",
    "WixInstanceNotAccessible",
    "WixRateLimited",
    "WixUnavailable",
]


class TenancyError(Exception):
    """Base class for every error tenancy raises."""

    __module__ = "tenancy"


class TenancyWarning(UserWarning):
    """A configuration that works but protects less than it could (e.g. no RLS on SQLite)."""

    __module__ = "tenancy"


class ConfigurationError(TenancyError):
    """Settings, engines or database roles cannot give the promised isolation."""

    __module__ = "tenancy"


class InvalidInstanceId(TenancyError, ValueError):
    """An instance id that is not a UUID; raised before anything is opened."""

    __module__ = "tenancy"


class InvalidToken(TenancyError):
    """A request token that Wix does not accept for this app, or that is malformed.

    Every refusal reason gets this one error so callers answer uniformly (401).
    ``reason`` says why in words safe to log (never the token itself). ``definite`` is true
    when Wix itself gave a well-formed verdict on this token (an ``active: false`` answer,
    a 401/403, a 400 ``invalid_token``, an expired ``exp``, another app's ``clientId``): only
    such refusals are remembered by :class:`~tenancy.wix.resolver.TokenResolver`.
    """

    __module__ = "tenancy"

    def __init__(
        self, message: str = "token rejected", *, reason: str | None = None, definite: bool = False
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.definite = definite


class TenantRemoved(InvalidToken):
    """The token is valid but its tenant was removed (``AppRemoved``): no session is opened.

    Only an ``AppInstalled`` event (or the sync's evidence) makes the tenant active again; a
    token, even one cached before the removal, never does. Answered like any refused token.
    """

    __module__ = "tenancy"

    def __init__(self, message: str = "tenant removed", *, reason: str | None = "tenant removed") -> None:
        super().__init__(message, reason=reason)


class InvalidWebhook(TenancyError):
    """A webhook body that is not a Wix event signed with the app's key (or has expired)."""

    __module__ = "tenancy"


class CrossTenantAccess(TenancyError):
    """A row of another tenant reached a tenant session; the operation was stopped."""

    __module__ = "tenancy"


class CrossTenantWrite(CrossTenantAccess):
    """A write would create, change or touch another tenant's rows."""

    __module__ = "tenancy"


class DuplicateInTenant(TenancyError):
    """A write collided with a row of the same tenant on a unique constraint (SQLSTATE 23505).

    Uniques lead with ``instance_id``, so this never reveals another tenant's data.
    ``constraint`` names the constraint; the driver's exception is ``__cause__``.
    """

    __module__ = "tenancy"

    def __init__(self, message: str, *, constraint: str | None = None) -> None:
        super().__init__(message)
        self.constraint = constraint


class LifecycleError(TenancyError):
    """Purge, export or copy of a tenant cannot run safely: a foreign-key cycle between tenant
    tables, a copy that would leave a reference dangling, a purge that cannot take its locks.
    The message names the tables."""

    __module__ = "tenancy"


class WixError(TenancyError):
    """A Wix API call failed.

    ``status`` is the HTTP status (``None`` when no response came) and
    ``request_id`` Wix's ``x-wix-request-id`` header, for Wix support.
    """

    __module__ = "tenancy"

    def __init__(self, message: str, *, status: int | None = None, request_id: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.request_id = request_id


class WixUnavailable(WixError):
    """Wix could not be reached, timed out or answered 5xx, after retries."""

    __module__ = "tenancy"


class WixRateLimited(WixError):
    """Wix answered 429 (rate limited), after retries."""

    __module__ = "tenancy"


class WixAuthError(WixError):
    """Wix refused the app's credentials (the token endpoint: ``invalid_client``, or a bare 401).

    The subclass :class:`WixInstanceNotAccessible` is a refusal of one instance only.
    """

    __module__ = "tenancy"


class WixInstanceNotAccessible(WixAuthError):
    """Wix refused this one instance, not the app.

    Either the token endpoint refused an app token for it (a 4xx other than 429 that is not
    a credential error: typically the app was removed from the site, or the instance id is
    unknown), or Get App Instance answered 401 (even with a fresh token), 403
    (``PERMISSION_DENIED``) or 404 (``NOT_FOUND``). The app's credentials were accepted
    (their refusal is a plain :class:`WixAuthError`). Not transient: a sync job records it
    on that tenant's row and goes on with the others; ``status`` and ``request_id`` say
    what Wix answered.
    """

    __module__ = "tenancy"
