"""Emulated sites: the state behind one app instance, and how Get App Instance shows it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import uuid
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FIELD_NAMES", "EmulatedSite", "iso_time", "random_site", "site_from_dict"]

_WORDS = (
    "amber", "birch", "cedar", "delta", "ember", "fjord", "grove", "harbor", "iris", "juniper",
    "kite", "lumen", "maple", "north", "olive", "pine", "quill", "river", "sage", "tide",
)  # fmt: skip
_KINDS = ("Bakery", "Studio", "Shop", "Yoga", "Garage", "Books", "Florist", "Coffee", "Salon", "Gallery")
_LOCALES = (("en", "USD", "America/New_York"), ("en", "GBP", "Europe/London"),
            ("fr", "EUR", "Europe/Paris"), ("de", "EUR", "Europe/Berlin"),
            ("he", "ILS", "Asia/Jerusalem"), ("ja", "JPY", "Asia/Tokyo"),
            ("pt", "BRL", "America/Sao_Paulo"), ("es", "EUR", "Europe/Madrid"))  # fmt: skip
_WIX_APPS = ("stores", "wix_forms", "pricingPlans", "bookings", "blog", "events", "members")
_CYCLES = ("MONTHLY", "YEARLY", "YEARLY", "TWO_YEARS", "ONE_TIME")
_PLANS = (
    "e8f429d4-0a6a-468f-8044-87f519a53202",
    "2b4f0e7d-3c11-4c7e-9a61-5f1c2a9e8d3b",
    "7d0c6e1a-9b8f-4e3d-a2c1-0f9e8d7c6b5a",
)
_VERSIONS = ("1.0.0", "1.4.2", "2.0.1", "2.10.0")
_PERMISSIONS = ("WIX_DEVELOPERS.MANAGE_APP_INSTANCE", "WIX_DEVELOPERS.CREATE_CHECKOUT")


def iso_time(when: dt.datetime) -> str:
    """Wix's timestamp form: UTC, milliseconds, a trailing Z."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


@dataclass(kw_only=True)
class EmulatedSite:
    """One app instance on one Wix site; mutable, so tests can change what Wix reports.

    Billing fields matter only when ``is_free`` is false. ``installed`` false means the app
    was removed: the token endpoint refuses the instance. ``body``, when set, is served
    verbatim by Get App Instance instead of the body built from the fields.
    """

    instance_id: str
    site_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    account_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    site_display_name: str | None = "My Site"
    url: str | None = None
    description: str | None = None
    locale: str = "en"
    payment_currency: str = "USD"
    time_zone: str | None = None
    app_name: str = "EMULATED_APP"
    app_version: str | None = "1.0.0"
    is_free: bool = True
    package_name: str | None = None
    billing_cycle: str | None = None
    billing_time_stamp: str | None = None
    expiration_date: str | None = None
    auto_renewing: bool | None = None
    invoice_id: str | None = None
    billing_source: str | None = None
    free_trial_status: str | None = None
    free_trial_end_date: str | None = None
    permissions: list[str] = field(default_factory=lambda: ["WIX_DEVELOPERS.MANAGE_APP_INSTANCE"])
    installed_wix_apps: list[str] = field(default_factory=list)
    owner_email: str | None = None
    site_user_type: str | None = None
    origin_instance_id: str | None = None
    copied_from_template: bool = False
    free_trial_available: bool = False
    installed: bool = True
    body: dict[str, Any] | None = None

    def to_body(self) -> dict[str, Any]:
        """The Get App Instance response for this site (API.md §4.2 shape)."""
        if self.body is not None:
            return self.body
        instance: dict[str, Any] = {
            "instanceId": self.instance_id,
            "appName": self.app_name,
            "appVersion": self.app_version,
            "isFree": self.is_free,
            "permissions": list(self.permissions),
            "availablePlans": [{"packageName": plan, "source": "app"} for plan in _PLANS[:2]],
            "isOriginSiteTemplate": self.copied_from_template,
            "copiedFromTemplate": self.copied_from_template,
            "freeTrialAvailable": self.free_trial_available,
        }
        if self.origin_instance_id is not None:
            instance["originInstanceId"] = self.origin_instance_id
        if not self.is_free:
            billing: dict[str, Any] = {
                "packageName": self.package_name,
                "billingCycle": self.billing_cycle,
                "timeStamp": self.billing_time_stamp,
                "expirationDate": self.expiration_date,
                "autoRenewing": self.auto_renewing,
                "invoiceId": self.invoice_id,
                "source": self.billing_source,
            }
            if self.free_trial_status is not None:
                billing["freeTrialInfo"] = {
                    "status": self.free_trial_status,
                    "endDate": self.free_trial_end_date,
                }
            instance["billing"] = billing
        site: dict[str, Any] = {
            "siteDisplayName": self.site_display_name,
            "locale": self.locale,
            "paymentCurrency": self.payment_currency,
            "multilingual": {"isMultiLingual": False, "supportedLanguages": []},
            "url": self.url,
            "description": self.description,
            "installedWixApps": list(self.installed_wix_apps),
            "siteId": self.site_id,
        }
        if self.owner_email is not None:
            site["ownerEmail"] = self.owner_email
            site["ownerInfo"] = {"email": self.owner_email, "emailStatus": "VERIFIED_OPT_IN"}
        if self.site_user_type is not None:
            site["siteUserType"] = self.site_user_type
        if self.time_zone is not None:
            # Not in Wix's documented schema; sent so the tenants.time_zone path is exercised.
            site["timeZone"] = self.time_zone
        return {"instance": instance, "site": site}

    def update(self, **fields: Any) -> None:
        """Change fields by name; unknown names (and ``instance_id``) raise ``ValueError``."""
        unknown = set(fields) - set(FIELD_NAMES)
        if unknown or "instance_id" in fields:
            bad = sorted(unknown | ({"instance_id"} & set(fields)))
            raise ValueError(f"cannot set site field(s): {', '.join(bad)}")
        for name, value in fields.items():
            setattr(self, name, value)


FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(EmulatedSite))


def site_from_dict(data: dict[str, Any], *, rng: random.Random) -> EmulatedSite:
    """A site from snake_case fields (as in a ``--sites-file``); missing ids come from ``rng``."""
    unknown = set(data) - set(FIELD_NAMES)
    if unknown:
        raise ValueError(f"unknown site field(s): {', '.join(sorted(unknown))}")
    values = dict(data)
    values.setdefault("instance_id", str(_uuid(rng)))
    values.setdefault("site_id", str(_uuid(rng)))
    values.setdefault("account_id", str(_uuid(rng)))
    values["instance_id"] = str(uuid.UUID(str(values["instance_id"])))  # canonical form
    return EmulatedSite(**values)


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def random_site(rng: random.Random, number: int) -> EmulatedSite:
    """A realistic site drawn from ``rng`` (deterministic for a seeded ``rng``); some paid."""
    iid, site_id, account_id = _uuid(rng), _uuid(rng), _uuid(rng)
    name = f"{rng.choice(_WORDS).title()} {rng.choice(_KINDS)} {number}"
    slug = name.lower().replace(" ", "-")
    locale, currency, zone = rng.choice(_LOCALES)
    published = rng.random() < 0.8
    site = EmulatedSite(
        instance_id=str(iid),
        site_id=str(site_id),
        account_id=str(account_id),
        site_display_name=name,
        url=f"https://{rng.choice(_WORDS)}{number}.wixsite.com/{slug}" if published else None,
        description=f"{name}: emulated site" if rng.random() < 0.5 else None,
        locale=locale,
        payment_currency=currency,
        time_zone=zone,
        app_version=rng.choice(_VERSIONS),
        is_free=rng.random() < 0.6,
        permissions=list(_PERMISSIONS[: rng.randint(1, 2)]),
        installed_wix_apps=sorted(rng.sample(_WIX_APPS, rng.randint(0, 3))),
        owner_email=f"owner{number}@example.com",
        site_user_type=rng.choice(("Channel DIY", "Channel DIFM", None)),
    )
    if not site.is_free:
        bought = dt.datetime(2025, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=rng.randrange(300 * 86400))
        cycle = rng.choice(_CYCLES)
        site.package_name = rng.choice(_PLANS)
        site.billing_cycle = cycle
        site.billing_time_stamp = iso_time(bought)
        if cycle in ("YEARLY", "TWO_YEARS"):
            site.expiration_date = iso_time(bought + dt.timedelta(days=365 if cycle == "YEARLY" else 730))
        site.auto_renewing = rng.random() < 0.8
        site.invoice_id = str(_uuid(rng))
        site.billing_source = rng.choice(("", "Wix discount coupon"))
        if rng.random() < 0.3:
            site.free_trial_status = "ENDED"
            site.free_trial_end_date = iso_time(bought + dt.timedelta(days=14))
    return site
