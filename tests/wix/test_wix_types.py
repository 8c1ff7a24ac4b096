"""Parsing of Wix bodies: the samples, tolerant scalars, and the bodies that are refused."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path

import pytest

from tenancy.errors import InvalidToken, WixError
from tenancy.wix.types import AppInstance, TokenInfo

FIXTURES = Path(__file__).parents[1] / "fixtures" / "wix"
UTC = dt.UTC


def sample(name: str) -> object:
    return json.loads((FIXTURES / name).read_text())


def test_token_info_sample_parses() -> None:
    """The Token Info sample parses to typed fields, exp/iat from numeric strings."""
    info = TokenInfo.from_json(sample("token-info-response.json"))
    assert info.active is True
    assert info.subject_type == "USER"
    assert info.subject_id == "12345678-90ab-cdef-1234-567890abcdef"
    assert info.expires_at == dt.datetime.fromtimestamp(1767225600, UTC)
    assert info.issued_at == dt.datetime.fromtimestamp(1767211200, UTC)
    assert info.client_id == "11111111-2222-3333-4444-555555555555"
    assert info.account_id == "12345678-90ab-cdef-1234-567890abcdef"
    assert info.site_id == "99999999-8888-7777-6666-555555555555"
    assert info.instance_id == uuid.UUID("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee")
    assert info.vendor_product_id is None


def test_token_info_inactive_sample_parses() -> None:
    """The inactive sample is inactive with every other field empty."""
    info = TokenInfo.from_json(sample("token-info-response-inactive.json"))
    assert info == TokenInfo(active=False)


@pytest.mark.parametrize(
    ("raw", "expected"), [(True, True), (False, False), ("true", True), ("TRUE", True), ("false", False)]
)
def test_token_info_active_accepts_bool_or_string(raw: object, expected: bool) -> None:
    """``active`` is JSON true/false or the string "true"/"false"."""
    assert TokenInfo.from_json({"active": raw}).active is expected


@pytest.mark.parametrize("raw", ["yes", 1, 0, None, [], {}])
def test_token_info_without_a_boolean_active_is_no_verdict(raw: object) -> None:
    """An answer without a readable ``active`` (``200 {}`` included) is a WixError, not a refusal."""
    body = {} if raw is None else {"active": raw}
    with pytest.raises(WixError, match="boolean 'active'"):
        TokenInfo.from_json(body)


@pytest.mark.parametrize("raw", [1715096067, "1715096067", " 1715096067 ", 1715096067.0])
def test_token_info_exp_accepts_int_or_numeric_string(raw: object) -> None:
    """``exp`` may be an int or a numeric string (the docs and the SDK disagree)."""
    info = TokenInfo.from_json({"active": True, "exp": raw, "iat": raw})
    assert info.expires_at == info.issued_at == dt.datetime(2024, 5, 7, 15, 34, 27, tzinfo=UTC)


@pytest.mark.parametrize("raw", [1796536306.5, "1796536306.5"])
def test_token_info_exp_keeps_its_fraction(raw: object) -> None:
    """A NumericDate may have a fraction (RFC 7519): it is read, not dropped."""
    info = TokenInfo.from_json({"active": True, "exp": raw})
    assert info.expires_at is not None and info.expires_at.timestamp() == 1796536306.5


@pytest.mark.parametrize(
    "raw",
    ["soon", True, False, [], {}, 10**20, -1, -62135596800, "-5", float("nan"), float("inf"), "1e400", "",
     "0001-01-01T00:00:00Z"],
)  # fmt: skip
def test_token_info_unreadable_exp_refuses_the_token(raw: object) -> None:
    """A present ``exp`` that is not a NumericDate refuses the token (never taken as absent)."""
    with pytest.raises(InvalidToken) as caught:
        TokenInfo.from_json({"active": True, "exp": raw})
    assert caught.value.reason == "exp is not a NumericDate" and not caught.value.definite


@pytest.mark.parametrize("raw", ["soon", True, [], {}, 10**20, -1, float("nan")])
def test_token_info_unreadable_iat_is_none(raw: object) -> None:
    """``iat`` decides nothing: unreadable, it is None."""
    assert TokenInfo.from_json({"active": True, "iat": raw}).issued_at is None


def test_token_info_lone_surrogates_are_refused_fields() -> None:
    """A string field holding a lone surrogate is not text: it is None, not kept for later."""
    info = TokenInfo.from_json({"active": True, "siteId": "\ud800", "clientId": "a\udfffb"})
    assert info.site_id is None and info.client_id is None


def test_token_info_bad_instance_id_is_none() -> None:
    """A non-UUID instanceId is treated as absent (the resolver then refuses the token)."""
    assert TokenInfo.from_json({"active": True, "instanceId": "nope"}).instance_id is None
    assert TokenInfo.from_json({"active": True, "instanceId": 7}).instance_id is None


@pytest.mark.parametrize("body", [[], "x", 3, None])
def test_token_info_non_object_is_a_wix_error(body: object) -> None:
    """A body that is not a JSON object is a WixError naming the problem."""
    with pytest.raises(WixError, match="not an object"):
        TokenInfo.from_json(body)


def test_full_app_instance_sample_parses() -> None:
    """Every field of the full Get App Instance sample lands in its snake_case attribute."""
    body = sample("get-app-instance-response-full.json")
    parsed = AppInstance.from_json(body)
    assert parsed.raw == body
    inst, site = parsed.instance, parsed.site
    assert inst is not None and site is not None
    assert inst.instance_id == uuid.UUID("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee")
    assert (inst.app_name, inst.app_version, inst.is_free) == ("MY_SHINY_APP", "2.10.0", False)
    assert inst.permissions == (
        "WIX_DEVELOPERS.CREATE_CHECKOUT",
        "WIX_DEVELOPERS.MANAGE_APP_INSTANCE",
        "WIX_DEVELOPERS.MANAGE_CHARGE",
    )
    assert len(inst.available_plans) == 1
    assert inst.available_plans[0].package_name == "e8f429d4-0a6a-468f-8044-87f519a53202"
    assert inst.available_plans[0].source == "bundle"
    assert inst.origin_instance_id == "0f0e0d0c-0b0a-4909-8807-060504030201"
    assert (inst.is_origin_site_template, inst.copied_from_template, inst.free_trial_available) == (
        True,
        True,
        False,
    )
    billing = inst.billing
    assert billing is not None
    assert billing.package_name == "e8f429d4-0a6a-468f-8044-87f519a53202"
    assert billing.billing_cycle == "YEARLY"
    assert billing.time_stamp == dt.datetime(2026, 1, 15, 10, 21, 33, 123000, tzinfo=UTC)
    assert billing.expiration_date == dt.datetime(2027, 1, 15, 10, 21, 33, 123000, tzinfo=UTC)
    assert billing.auto_renewing is True
    assert billing.invoice_id == "5f1c2a9e-8d3b-4c7e-9a61-2b4f0e7d3c11"
    assert billing.source == "Wix discount coupon"
    assert billing.free_trial_info is not None
    assert billing.free_trial_info.status == "ENDED"
    assert billing.free_trial_info.end_date == dt.datetime(2026, 1, 29, 10, 21, 33, 123000, tzinfo=UTC)
    assert site.site_display_name == "Mysite 34"
    assert (site.locale, site.payment_currency) == ("en", "USD")
    assert site.url == "https://doereg11.wixsite.com/mysite-34"
    assert site.description == "My awesome site is all about selling stuff"
    assert site.installed_wix_apps == ("stores", "wix_forms", "pricingPlans")
    assert site.owner_email == "site-owner@test.com"
    assert site.owner_info is not None
    assert (site.owner_info.email, site.owner_info.email_status) == ("site-owner@test.com", "VERIFIED_OPT_IN")
    assert site.site_id == "99999999-8888-7777-6666-555555555555"
    assert site.site_user_type == "Channel DIY"
    assert site.time_zone is None
    assert site.multilingual is not None and site.multilingual.is_multi_lingual is True
    he = site.multilingual.supported_languages[1]
    assert (he.language_code, he.locale_language_code, he.locale_country) == ("he", "he", "IL")
    assert (he.is_primary, he.country_code, he.resolution_method, he.is_visitor_primary) == (
        False,
        "IL",
        "SUBDIRECTORY",
        False,
    )


def test_minimal_app_instance_sample_parses() -> None:
    """The minimal sample parses, optional parts left empty."""
    parsed = AppInstance.from_json(sample("get-app-instance-response-minimal.json"))
    assert parsed.instance is not None and parsed.site is not None
    assert parsed.instance.is_free is True
    assert parsed.instance.billing is None
    assert parsed.instance.app_version is None
    assert parsed.instance.available_plans == ()
    assert parsed.site.site_display_name is None
    assert parsed.site.url is None
    assert parsed.site.multilingual is None
    assert parsed.site.installed_wix_apps == ()


def test_app_instance_tolerates_unknowns_and_odd_values() -> None:
    """Unknown fields and enum values are kept or ignored; bad values become None."""
    body = {
        "instance": {
            "instanceId": "not-a-uuid",
            "isFree": "false",
            "billing": {
                "billingCycle": "SEVEN_YEARS",
                "timeStamp": "2026-01-15T10:21:33Z",
                "expirationDate": "next tuesday",
                "freeTrialInfo": {"status": "SOMETHING_NEW", "endDate": None},
            },
            "permissions": ["A", 3, None, "B"],
            "availablePlans": [{"packageName": "p"}, "junk"],
            "brandNewField": {"x": 1},
        },
        "site": {"timeZone": "Europe/Paris", "installedWixApps": "stores", "multilingual": []},
        "extra": True,
    }
    parsed = AppInstance.from_json(body)
    assert parsed.instance is not None and parsed.site is not None
    assert parsed.instance.instance_id is None
    assert parsed.instance.is_free is False
    billing = parsed.instance.billing
    assert billing is not None and billing.free_trial_info is not None
    assert billing.billing_cycle == "SEVEN_YEARS"
    assert billing.time_stamp == dt.datetime(2026, 1, 15, 10, 21, 33, tzinfo=UTC)
    assert billing.expiration_date is None
    assert billing.free_trial_info.status == "SOMETHING_NEW"
    assert parsed.instance.permissions == ("A", "B")
    assert len(parsed.instance.available_plans) == 1
    assert parsed.site.time_zone == "Europe/Paris"
    assert parsed.site.installed_wix_apps == ()
    assert parsed.site.multilingual is None


@pytest.mark.parametrize(
    "raw",
    ["2026-01-15T10:21:33.123Z", "2026-01-15T10:21:33.123+00:00", "2026-01-15T12:21:33.123+02:00",
     "2026-01-15T10:21:33.123"],
)  # fmt: skip
def test_iso_timestamps_are_parsed_leniently(raw: str) -> None:
    """Z suffixes, offsets and naive timestamps all become the same UTC datetime."""
    parsed = AppInstance.from_json({"instance": {"billing": {"timeStamp": raw}}})
    assert parsed.instance is not None and parsed.instance.billing is not None
    assert parsed.instance.billing.time_stamp == dt.datetime(2026, 1, 15, 10, 21, 33, 123000, tzinfo=UTC)


def test_absent_or_null_parts_are_none() -> None:
    """An empty object, or null instance/site, parses with both parts None."""
    assert AppInstance.from_json({}).instance is None
    parsed = AppInstance.from_json({"instance": None, "site": None})
    assert (parsed.instance, parsed.site) == (None, None)


@pytest.mark.parametrize(
    ("body", "problem"),
    [([], "JSON list, not an object"), ("x", "JSON str, not an object"),
     ({"instance": []}, "'instance' is a JSON list"), ({"site": "s"}, "'site' is a JSON str")],
)  # fmt: skip
def test_app_instance_refuses_non_objects(body: object, problem: str) -> None:
    """A body, instance or site that is not an object is a WixError naming the problem."""
    with pytest.raises(WixError, match=problem):
        AppInstance.from_json(body)


def test_app_instance_repr_leaves_out_raw() -> None:
    """repr() shows parsed fields, not the raw body (which may hold an owner's email twice)."""
    parsed = AppInstance.from_json(sample("get-app-instance-response-minimal.json"))
    assert "raw=" not in repr(parsed)
