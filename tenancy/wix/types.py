"""Parsed Wix API responses: Token Info and Get App Instance, as frozen dataclasses.

Parsing is tolerant on purpose (Wix adds fields and enum values, the docs and the SDK disagree
on wire types): every field but ``TokenInfo.active`` is optional, unknown fields are ignored,
unknown enum strings are kept as strings, and an unparseable value (a lone surrogate in a
string, a date out of range included) becomes ``None`` instead of an error. Refused, with an
error that names the problem: a body that is not a JSON object at all (or whose
``instance``/``site`` is not an object) and a Token Info answer without a boolean ``active``
(:class:`~tenancy.WixError`); a Token Info ``exp`` that is present but not a NumericDate
(:class:`~tenancy.InvalidToken`: an expiry that cannot be read is never taken as none).
"""

from __future__ import annotations

import datetime as dt
import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tenancy.errors import InvalidToken, WixError

__all__ = [
    "AppInstance",
    "AvailablePlan",
    "Billing",
    "FreeTrialInfo",
    "InstanceInfo",
    "Multilingual",
    "OwnerInfo",
    "SiteInfo",
    "SupportedLanguage",
    "TokenInfo",
]


# --- tolerant scalar readers --------------------------------------------------------------


def _str(value: object) -> str | None:
    # A lone surrogate ("\ud800" in JSON) is not text: it would fail later, when sent to
    # PostgreSQL or a log. The field is refused (None) like any other unreadable value.
    if not isinstance(value, str):
        return None
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return None
    return value


def _bool(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


# A NumericDate as Wix writes it in a string: seconds, optionally with a fraction.
_NUMERIC = re.compile(r"[0-9]{1,20}(?:\.[0-9]{1,9})?")


def _numeric_date(value: object) -> dt.datetime | None:
    """A JWT NumericDate (RFC 7519: Unix seconds, fractions allowed) as an aware UTC datetime.

    Accepts an int, a finite float or a decimal string; ``None`` for anything else: a bool,
    NaN or infinity, a negative number, a non-numeric string, a value beyond year 9999.
    """
    seconds: int | float
    if isinstance(value, bool):  # bool is an int subclass; True is not a timestamp
        return None
    if isinstance(value, int | float):
        seconds = value
    elif isinstance(value, str) and _NUMERIC.fullmatch(value.strip()):
        text = value.strip()
        seconds = float(text) if "." in text else int(text)
    else:
        return None
    try:
        if not math.isfinite(seconds) or seconds < 0:
            return None
        return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
    except (OverflowError, OSError, ValueError):  # an int too large for a float or a datetime
        return None


def _iso(value: object) -> dt.datetime | None:
    """An ISO-8601 timestamp as an aware UTC datetime; naive values are taken as UTC."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text[-1] in "zZ":
        text = text[:-1] + "+00:00"
    try:
        parsed = dt.datetime.fromisoformat(text)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        # Year 1 with a positive offset, or year 9999 with a negative one, leaves datetime's
        # range once moved to UTC (OverflowError): unreadable, like any other bad date.
        return parsed.astimezone(dt.UTC)
    except (OverflowError, ValueError):
        return None


def _uuid(value: object) -> uuid.UUID | None:
    if not isinstance(value, str):
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _strs(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(item for item in value if isinstance(item, str))


def _objects(value: object) -> list[Mapping[str, Any]]:
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, Mapping)]


def _object(value: object) -> Mapping[str, Any] | None:
    return value if isinstance(value, Mapping) else None


# --- Token Info ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TokenInfo:
    """What ``POST /oauth2/token-info`` says about a token (API.md §3.2).

    ``active`` is what Wix said (a bool, or the string ``"true"``/``"false"``);
    ``expires_at`` and ``issued_at`` come from ``exp``/``iat`` read as JWT NumericDates (Unix
    seconds, fractions allowed, as a number or a decimal string; UTC). The token itself is
    never stored here.
    """

    active: bool
    subject_type: str | None = None
    subject_id: str | None = None
    expires_at: dt.datetime | None = None
    issued_at: dt.datetime | None = None
    client_id: str | None = None
    account_id: str | None = None
    site_id: str | None = None
    instance_id: uuid.UUID | None = None
    vendor_product_id: str | None = None

    @classmethod
    def from_json(cls, body: object) -> TokenInfo:
        """Parse a Token Info response body.

        A body that gives no verdict (not an object, ``active`` missing or not a boolean)
        raises :class:`WixError`: Wix did not answer, so the token is neither accepted nor
        refused. An ``exp`` that is present but not a NumericDate (negative, a bool, NaN,
        infinite, a word, out of range) raises :class:`~tenancy.InvalidToken`: a token
        whose expiry cannot be read is refused, never taken as one without expiry.
        """
        if not isinstance(body, Mapping):
            raise WixError(f"Token Info answered a JSON {type(body).__name__}, not an object", status=200)
        active = _bool(body.get("active"))
        if active is None:
            raise WixError("Token Info answered without a boolean 'active'", status=200)
        exp = body.get("exp")
        expires_at = _numeric_date(exp)
        if exp is not None and expires_at is None:
            raise InvalidToken(reason="exp is not a NumericDate")
        return cls(
            active=active,
            subject_type=_str(body.get("subjectType")),
            subject_id=_str(body.get("subjectId")),
            expires_at=expires_at,
            issued_at=_numeric_date(body.get("iat")),
            client_id=_str(body.get("clientId")),
            account_id=_str(body.get("accountId")),
            site_id=_str(body.get("siteId")),
            instance_id=_uuid(body.get("instanceId")),
            vendor_product_id=_str(body.get("vendorProductId")),
        )


# --- Get App Instance ---------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class FreeTrialInfo:
    """``instance.billing.freeTrialInfo``: ``status`` (IN_PROGRESS, ENDED, ...) and ``end_date``."""

    status: str | None = None
    end_date: dt.datetime | None = None

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> FreeTrialInfo:
        """Parse the object; unknown status strings are kept."""
        return cls(status=_str(body.get("status")), end_date=_iso(body.get("endDate")))


@dataclass(frozen=True, kw_only=True)
class Billing:
    """``instance.billing``: the paid plan (present only for paid installs)."""

    package_name: str | None = None
    billing_cycle: str | None = None
    time_stamp: dt.datetime | None = None
    expiration_date: dt.datetime | None = None
    auto_renewing: bool | None = None
    invoice_id: str | None = None
    source: str | None = None
    free_trial_info: FreeTrialInfo | None = None

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Billing:
        """Parse the object; ``billing_cycle`` keeps unknown PaymentCycle values as strings."""
        trial = _object(body.get("freeTrialInfo"))
        return cls(
            package_name=_str(body.get("packageName")),
            billing_cycle=_str(body.get("billingCycle")),
            time_stamp=_iso(body.get("timeStamp")),
            expiration_date=_iso(body.get("expirationDate")),
            auto_renewing=_bool(body.get("autoRenewing")),
            invoice_id=_str(body.get("invoiceId")),
            source=_str(body.get("source")),
            free_trial_info=FreeTrialInfo.from_json(trial) if trial is not None else None,
        )


@dataclass(frozen=True, kw_only=True)
class AvailablePlan:
    """One of ``instance.availablePlans``."""

    package_name: str | None = None
    source: str | None = None


@dataclass(frozen=True, kw_only=True)
class InstanceInfo:
    """``instance``: the app instance (the tenant) as Wix describes it."""

    instance_id: uuid.UUID | None = None
    app_name: str | None = None
    app_version: str | None = None
    is_free: bool | None = None
    billing: Billing | None = None
    permissions: tuple[str, ...] = ()
    available_plans: tuple[AvailablePlan, ...] = ()
    origin_instance_id: str | None = None
    is_origin_site_template: bool | None = None
    copied_from_template: bool | None = None
    free_trial_available: bool | None = None

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> InstanceInfo:
        """Parse the ``instance`` object."""
        billing = _object(body.get("billing"))
        return cls(
            instance_id=_uuid(body.get("instanceId")),
            app_name=_str(body.get("appName")),
            app_version=_str(body.get("appVersion")),
            is_free=_bool(body.get("isFree")),
            billing=Billing.from_json(billing) if billing is not None else None,
            permissions=_strs(body.get("permissions")),
            available_plans=tuple(
                AvailablePlan(package_name=_str(plan.get("packageName")), source=_str(plan.get("source")))
                for plan in _objects(body.get("availablePlans"))
            ),
            origin_instance_id=_str(body.get("originInstanceId")),
            is_origin_site_template=_bool(body.get("isOriginSiteTemplate")),
            copied_from_template=_bool(body.get("copiedFromTemplate")),
            free_trial_available=_bool(body.get("freeTrialAvailable")),
        )


@dataclass(frozen=True, kw_only=True)
class SupportedLanguage:
    """One of ``site.multilingual.supportedLanguages``."""

    language_code: str | None = None
    locale_language_code: str | None = None
    locale_country: str | None = None
    is_primary: bool | None = None
    country_code: str | None = None
    resolution_method: str | None = None
    is_visitor_primary: bool | None = None

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> SupportedLanguage:
        """Parse one language entry; ``locale`` is flattened into two fields."""
        locale = _object(body.get("locale")) or {}
        return cls(
            language_code=_str(body.get("languageCode")),
            locale_language_code=_str(locale.get("languageCode")),
            locale_country=_str(locale.get("country")),
            is_primary=_bool(body.get("isPrimary")),
            country_code=_str(body.get("countryCode")),
            resolution_method=_str(body.get("resolutionMethod")),
            is_visitor_primary=_bool(body.get("isVisitorPrimary")),
        )


@dataclass(frozen=True, kw_only=True)
class Multilingual:
    """``site.multilingual``."""

    is_multi_lingual: bool | None = None
    supported_languages: tuple[SupportedLanguage, ...] = ()


@dataclass(frozen=True, kw_only=True)
class OwnerInfo:
    """``site.ownerInfo`` (needs the *Read Site Owner Email* permission)."""

    email: str | None = None
    email_status: str | None = None


@dataclass(frozen=True, kw_only=True)
class SiteInfo:
    """``site``: the Wix site the instance is installed on.

    ``time_zone`` is read from ``timeZone`` when present; it is not in Wix's documented
    schema, but the ``tenants`` table has the column.
    """

    site_display_name: str | None = None
    locale: str | None = None
    payment_currency: str | None = None
    multilingual: Multilingual | None = None
    url: str | None = None
    description: str | None = None
    installed_wix_apps: tuple[str, ...] = ()
    owner_email: str | None = None
    owner_info: OwnerInfo | None = None
    site_id: str | None = None
    site_user_type: str | None = None
    time_zone: str | None = None

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> SiteInfo:
        """Parse the ``site`` object."""
        multi = _object(body.get("multilingual"))
        owner = _object(body.get("ownerInfo"))
        return cls(
            site_display_name=_str(body.get("siteDisplayName")),
            locale=_str(body.get("locale")),
            payment_currency=_str(body.get("paymentCurrency")),
            multilingual=(
                Multilingual(
                    is_multi_lingual=_bool(multi.get("isMultiLingual")),
                    supported_languages=tuple(
                        SupportedLanguage.from_json(lang)
                        for lang in _objects(multi.get("supportedLanguages"))
                    ),
                )
                if multi is not None
                else None
            ),
            url=_str(body.get("url")),
            description=_str(body.get("description")),
            installed_wix_apps=_strs(body.get("installedWixApps")),
            owner_email=_str(body.get("ownerEmail")),
            owner_info=(
                OwnerInfo(email=_str(owner.get("email")), email_status=_str(owner.get("emailStatus")))
                if owner is not None
                else None
            ),
            site_id=_str(body.get("siteId")),
            site_user_type=_str(body.get("siteUserType")),
            time_zone=_str(body.get("timeZone")),
        )


@dataclass(frozen=True, kw_only=True)
class AppInstance:
    """A Get App Instance response: parsed ``instance`` and ``site``, and the whole body as ``raw``.

    Keep ``raw`` (e.g. in ``tenants.raw``) for fields this parser does not know yet.
    """

    instance: InstanceInfo | None
    site: SiteInfo | None
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, body: object) -> AppInstance:
        """Parse a Get App Instance body; a non-object body or part raises :class:`WixError`."""
        if not isinstance(body, dict):
            raise WixError(
                f"Get App Instance answered a JSON {type(body).__name__}, not an object", status=200
            )
        parts: dict[str, Mapping[str, Any] | None] = {}
        for name in ("instance", "site"):
            value = body.get(name)
            # Absent and null both mean "not sent"; anything else must be an object.
            if value is not None and not isinstance(value, Mapping):
                raise WixError(
                    f"Get App Instance: {name!r} is a JSON {type(value).__name__}, not an object", status=200
                )
            parts[name] = value
        instance, site = parts["instance"], parts["site"]
        return cls(
            instance=InstanceInfo.from_json(instance) if instance is not None else None,
            site=SiteInfo.from_json(site) if site is not None else None,
            raw=body,
        )
