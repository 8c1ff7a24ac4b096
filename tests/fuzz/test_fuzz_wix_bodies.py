"""Fuzzing what Wix answers (Hypothesis): Token Info, token and Get App Instance bodies of every
JSON shape and type, with every status, served by the emulator over real HTTP.

Only ``tenancy`` errors come out; a session is opened only when Token Info vouches for the
token; the app secret (and any planted secret Wix echoes) is in no message or log line;
parsed answers have their declared types.
"""

from __future__ import annotations

import itertools
import time
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import tenancy
from tenancy.wix import jsonsafe
from tenancy.wix.resolver import TokenResolver
from tests.fuzz.conftest import MARK
from tests.fuzz.strategies import (
    all_fields_conform,
    deep_bodies,
    echo_headers,
    iso_dates,
    no_secret,
    numeric_dates,
    surrogate_text,
    wix_json,
    wix_text,
)
from tests.wix_helpers import sample

pytestmark = pytest.mark.postgres

statuses = st.one_of(st.just(200), st.sampled_from([200, 400, 401, 403, 404, 409, 429, 500, 503]))
_numbers = itertools.count()


def _serve(
    emu, endpoint: str, status: int, body: Any, iid: str | None = None, headers: dict[str, str] | None = None
) -> None:
    emu.clear_overrides()
    raw = body if isinstance(body, bytes) else None
    emu.respond_with(
        endpoint,
        status=status,
        body=raw if raw is not None else _json(body),
        instance_id=iid,
        headers=headers,
    )


def _json(body: Any) -> bytes:
    import json

    return json.dumps(body).encode()


def _clean(exc: BaseException, logs, emu) -> None:
    text = f"{exc}\n{exc!r}\n{logs.take()}"
    assert no_secret(text) and emu.app_secret not in text


# --- Token Info -----------------------------------------------------------------------------


def token_info_bodies(app_id: str, instance_ids: list[str]) -> st.SearchStrategy[Any]:
    # Fixed instants, not time.time(): a strategy must not change between runs of an example.
    future = 4_000_000_000  # 2096
    fields = st.fixed_dictionaries(
        {},
        optional={
            "active": st.one_of(st.just(True), st.sampled_from(["true", " TRUE ", "false", 1, 0]), wix_json),
            "clientId": st.one_of(st.just(app_id), st.just(app_id.upper()), wix_json),
            "instanceId": st.one_of(st.sampled_from(instance_ids), st.uuids().map(str), wix_json),
            "exp": st.one_of(
                st.just(str(future)),
                st.just(future),
                st.integers(0, 1_000_000_000).map(str),
                numeric_dates,
                wix_json,
            ),
            "iat": st.one_of(numeric_dates, wix_json),
            "siteId": st.one_of(st.uuids().map(str), surrogate_text, wix_json),
            "subjectType": wix_json,
            "subjectId": wix_json,
            "accountId": wix_json,
            "vendorProductId": wix_json,
        },
    )

    def nest(base: dict[str, Any], deep: bytes) -> bytes:
        # A vouching answer with one field nested past every limit.
        return _json(base)[:-1] + b', "deep": ' + deep + b"}"

    vouching = {"active": True, "clientId": app_id, "instanceId": instance_ids[0]}
    return st.one_of(
        fields,
        fields,
        wix_json,
        st.binary(max_size=50),
        deep_bodies,
        st.builds(nest, st.just(vouching), deep_bodies),
    )


def _vouches(body: Any, app_id: str) -> bool:
    """Strictly sufficient for acceptance: active true, this app, an instance, exp ahead or absent."""
    if not isinstance(body, dict):
        return False
    exp = body.get("exp", None)
    exp_ok = "exp" not in body or (
        isinstance(exp, int | str) and str(exp).isdigit() and int(exp) > time.time() + 60
    )
    instance = body.get("instanceId")
    return (
        body.get("active") is True
        and body.get("clientId") == app_id
        and isinstance(instance, str)
        and len(instance) == 36
        and _is_uuid(instance)
        and exp_ok
    )


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


@pytest.fixture(scope="module")
def factory(engines, client):
    runtime, admin, _ = engines
    return tenancy.TenantSessionFactory(runtime, admin_engine=admin, resolver=TokenResolver(client))


@given(data=st.data(), status=statuses, headers=echo_headers)
def test_token_info_answers_of_every_shape(factory, emu, engines, logs, data, status, headers) -> None:
    """A session exactly when Token Info vouches (200, active, this app, an instance, exp ahead);
    otherwise a tenancy error and no connection checked out. A present ``exp`` is always
    honoured: a session means it was a readable NumericDate still ahead."""
    body = data.draw(token_info_bodies(emu.app_id, emu.instance_ids))
    _serve(emu, "token_info", status, body, headers=headers)
    checkouts = engines[2]
    before = checkouts.count
    token = f"OauthNG.JWS.fuzz-{next(_numbers)}"
    try:
        session = factory.for_token(token)
    except tenancy.TenancyError as exc:
        assert checkouts.count == before
        assert not (status == 200 and _vouches(body, emu.app_id))
        _clean(exc, logs, emu)
        return
    with session:
        info = factory.resolver.resolve(token)  # cached: no second request
        assert all_fields_conform(info)
        assert session.info["tenancy.instance_id"] == info.instance_id
    if isinstance(body, bytes):  # a vouching answer nested within tenancy's bound (64 levels)
        body = jsonsafe.loads(body)
    assert status == 200 and isinstance(body, dict)
    assert info.active and info.client_id == emu.app_id and info.instance_id is not None
    if body.get("exp") is not None:  # present: never taken as absent
        assert info.expires_at is not None and info.expires_at.timestamp() > time.time() - 31
    assert body.get("clientId") == emu.app_id and body.get("active") in (True, "true", " TRUE ")


# --- token endpoint -------------------------------------------------------------------------

token_bodies = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "access_token": st.one_of(st.just(f"OauthNG.JWS.{MARK}"), wix_json),
            "expires_in": st.one_of(numeric_dates, wix_json),
            "token_type": wix_json,
            "error": st.one_of(st.sampled_from(["invalid_client", "invalid_request"]), wix_json),
            "error_description": wix_text,
            "message": wix_text,
            "details": wix_json,
        },
    ),
    wix_json,
    st.binary(max_size=50),
    deep_bodies,
)


@given(status=statuses, body=token_bodies, headers=echo_headers)
def test_token_endpoint_answers_of_every_shape(client, emu, logs, status, body, headers) -> None:
    """An access token (a non-empty string, from a 200) or a tenancy error; the secret never echoed."""
    iid = emu.instance_ids[0]
    client.forget_app_token(iid)
    _serve(emu, "access_token", status, body, iid, headers=headers)
    try:
        token = client.app_access_token(iid)
    except tenancy.TenancyError as exc:
        assert isinstance(exc, tenancy.WixError)
        if isinstance(exc, tenancy.WixAuthError) and not isinstance(exc, tenancy.WixInstanceNotAccessible):
            assert 400 <= status < 500  # only a 4xx can be the app's credentials
        _clean(exc, logs, emu)
    else:
        assert isinstance(token, str) and token
        # Either the served answer, or (after a retried 429/5xx) the emulator's own.
        assert token == (body.get("access_token") if status == 200 else token)
    finally:
        client.forget_app_token(iid)


# --- Get App Instance -----------------------------------------------------------------------


def app_instance_bodies(iid: str) -> st.SearchStrategy[Any]:
    full = sample("get-app-instance-response-full.json")
    full["instance"]["instanceId"] = iid

    def mutate(path_value: tuple[str, str, Any]) -> dict[str, Any]:
        part, key, value = path_value
        body = {"instance": dict(full["instance"]), "site": dict(full["site"])}
        body[part][key] = value
        return body

    mutated = st.tuples(
        st.sampled_from(["instance", "site"]),
        st.sampled_from(sorted({*full["instance"], *full["site"]})),
        st.one_of(wix_json, iso_dates, surrogate_text),
    ).map(mutate)

    def billing_dates(dates: tuple[str, str, str]) -> dict[str, Any]:
        body = {"instance": dict(full["instance"]), "site": dict(full["site"])}
        billing = dict(body["instance"].get("billing") or {})
        billing["timeStamp"], billing["expirationDate"] = dates[0], dates[1]
        billing["freeTrialInfo"] = {"status": "ENDED", "endDate": dates[2]}
        body["instance"]["billing"] = billing
        return body

    dated = st.tuples(iso_dates, iso_dates, iso_dates).map(billing_dates)
    shaped = st.fixed_dictionaries(
        {},
        optional={
            "instance": st.one_of(
                st.fixed_dictionaries(
                    {"instanceId": st.just(iid)},
                    optional={k: wix_json for k in full["instance"] if k != "instanceId"},
                ),
                wix_json,
            ),
            "site": st.one_of(
                st.fixed_dictionaries({}, optional={k: wix_json for k in full["site"]}), wix_json
            ),
            "message": wix_text,
            "details": wix_json,
        },
    )
    return st.one_of(mutated, dated, shaped, wix_json, st.binary(max_size=50), deep_bodies)


@given(data=st.data(), status=statuses, headers=echo_headers)
def test_get_app_instance_answers_of_every_shape(client, emu, logs, data, status, headers) -> None:
    """An AppInstance whose every field has its declared type (about this instance only), or a
    tenancy error."""
    iid = emu.instance_ids[1]
    body = data.draw(app_instance_bodies(iid))
    _serve(emu, "get_app_instance", status, body, iid, headers=headers)
    try:
        app = client.get_app_instance(iid)
    except tenancy.TenancyError as exc:
        assert isinstance(exc, tenancy.WixError)
        _clean(exc, logs, emu)
        return
    assert all_fields_conform(app)
    if app.instance is not None:
        assert app.instance.instance_id in (None, uuid.UUID(iid))
