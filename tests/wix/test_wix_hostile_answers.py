"""Hostile Wix answers over real HTTP (the emulator): only tenancy errors, never a secret.

Each case here once escaped as another exception (OverflowError, RecursionError,
UnicodeEncodeError) or put the app secret into an error message.
"""

from __future__ import annotations

import json
import logging
import traceback
import uuid
from collections.abc import Iterator

import pytest

from tenancy.emulator import Emulator
from tenancy.errors import TenancyError, WixError
from tenancy.wix import jsonsafe
from tenancy.wix.client import WixClient
from tests.wix_helpers import client_for, sample

SECRET = "emulator-only-secret-echo-0123456789"


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(sites=2, seed=5, app_secret=SECRET) as emulator:
        yield emulator


@pytest.fixture
def client(emu: Emulator) -> Iterator[WixClient]:
    with client_for(emu, max_retries=0) as wix:
        yield wix


def _everything(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc) + repr(vars(exc)) + repr(exc.args)


@pytest.mark.parametrize(
    "expires_in",
    [b"Infinity", b"-Infinity", b"NaN", b"1e400", b"1" + b"0" * 400, b"-5", b"-0.5", b"true",
     b'"soon"', b'"1e9"', b"[14400]", b"99999999999"],
)  # fmt: skip
def test_an_unusable_expires_in_is_a_wix_error_naming_it(
    emu: Emulator, client: WixClient, expires_in: bytes
) -> None:
    """``expires_in`` infinite, NaN, huge, negative, a word: a WixError that names the field."""
    iid = emu.instance_ids[0]
    body = b'{"access_token": "OauthNG.JWS.app", "token_type": "Bearer", "expires_in": %s}' % expires_in
    emu.respond_with("access_token", status=200, body=body, instance_id=iid)
    with pytest.raises(WixError, match="expires_in is not a number of seconds"):
        client.app_access_token(iid)


@pytest.mark.parametrize("expires_in", [b"14400", b'"14400"', b"14400.0", b"null", b"0"])
def test_a_usable_expires_in_gives_a_token(emu: Emulator, client: WixClient, expires_in: bytes) -> None:
    """Wix's 14400 as a number or a string (or none at all) still works."""
    iid = emu.instance_ids[0]
    body = b'{"access_token": "OauthNG.JWS.app", "expires_in": %s}' % expires_in
    emu.respond_with("access_token", status=200, body=body, instance_id=iid)
    assert client.app_access_token(iid) == "OauthNG.JWS.app"


@pytest.mark.parametrize("endpoint", ["token_info", "access_token", "get_app_instance"])
def test_json_nested_past_the_recursion_limit_is_a_wix_error(
    emu: Emulator, client: WixClient, endpoint: str
) -> None:
    """100,000 nested arrays (or objects) in any Wix answer: a WixError, not RecursionError."""
    iid = emu.instance_ids[0]
    for deep in (b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000):
        emu.clear_overrides()
        emu.respond_with(
            endpoint, status=200, body=deep, instance_id=None if endpoint == "token_info" else iid
        )
        with pytest.raises(WixError, match="nested deeper"):
            if endpoint == "token_info":
                client.token_info("OauthNG.JWS.t")
            elif endpoint == "access_token":
                client.forget_app_token(iid)
                client.app_access_token(iid)
            else:
                client.get_app_instance(iid)


@pytest.mark.parametrize("in_strings", [0, 2 * jsonsafe.MAX_DEPTH], ids=["no-padding", "brackets-in-strings"])
@pytest.mark.parametrize("as_text", [False, True], ids=["bytes", "str"])
def test_the_depth_bound_is_exact(in_strings: int, as_text: bool) -> None:
    """MAX_DEPTH levels load and one more is refused, with few brackets (no walk needed to know)
    or many (inside strings too: the walk decides); a lone surrogate is refused at any depth."""
    padding = json.dumps("[{" * in_strings)
    for depth, ok in ((jsonsafe.MAX_DEPTH, True), (jsonsafe.MAX_DEPTH + 1, False), (1, True)):
        text = "[" * depth + padding + "]" * depth
        content = text if as_text else text.encode()
        if ok:
            assert jsonsafe.loads(content) is not None
        else:
            with pytest.raises(jsonsafe.UnsafeJSON, match="nested deeper"):
                jsonsafe.loads(content)
    with pytest.raises(jsonsafe.UnsafeJSON, match="surrogate"):
        jsonsafe.loads('["\\ud800"]' if as_text else b'["\\ud800"]')


def test_json_nested_past_the_recursion_limit_in_an_error_body_is_ignored(
    emu: Emulator, client: WixClient
) -> None:
    """A deep error body gives the plain HTTP error, without its (unreadable) detail."""
    iid = emu.instance_ids[0]
    emu.respond_with("access_token", status=400, body=b"[" * 100_000, instance_id=iid)
    with pytest.raises(WixError, match="HTTP 400") as raised:
        client.app_access_token(iid)
    assert "(" not in str(raised.value).split("[request id")[0]  # no detail read from the body


def test_a_lone_surrogate_in_get_app_instance_is_a_wix_error(emu: Emulator, client: WixClient) -> None:
    """``"\\ud800"`` anywhere in Get App Instance (raw is stored as jsonb): refused before use."""
    iid = emu.instance_ids[0]
    body = sample("get-app-instance-response-full.json")
    body["instance"]["instanceId"] = iid
    body["site"]["siteDisplayName"] = "\ud800"
    raw = json.dumps(body).encode()  # json.dumps writes the surrogate as the escape \ud800
    assert b"\\ud800" in raw
    emu.respond_with("get_app_instance", status=200, body=raw, instance_id=iid)
    with pytest.raises(WixError, match="lone surrogate"):
        client.get_app_instance(iid)


def test_get_app_instance_dates_out_of_range_are_none(emu: Emulator, client: WixClient) -> None:
    """Dates datetime cannot hold once in UTC are unreadable (None), not OverflowError."""
    iid = emu.instance_ids[0]
    body = sample("get-app-instance-response-full.json")
    body["instance"]["instanceId"] = iid
    body["instance"]["billing"]["timeStamp"] = "0001-01-01T00:00:00+05:00"
    body["instance"]["billing"]["expirationDate"] = "9999-12-31T23:59:59-05:00"
    body["instance"]["billing"]["freeTrialInfo"] = {"status": "ENDED", "endDate": "99999-01-01T00:00:00Z"}
    emu.respond_with("get_app_instance", status=200, body=body, instance_id=iid)
    app = client.get_app_instance(iid)
    assert app.instance is not None and app.instance.billing is not None
    billing = app.instance.billing
    assert billing.time_stamp is None and billing.expiration_date is None
    assert billing.free_trial_info is not None and billing.free_trial_info.end_date is None
    assert app.instance.instance_id == uuid.UUID(iid)


@pytest.mark.parametrize("endpoint", ["token_info", "access_token", "get_app_instance"])
@pytest.mark.parametrize("status", [200, 400, 401, 403, 500])
def test_a_secret_echoed_in_the_request_id_header_is_redacted(
    emu: Emulator, client: WixClient, caplog: pytest.LogCaptureFixture, endpoint: str, status: int
) -> None:
    """Wix (or a proxy) echoing the app secret or a token in ``x-wix-request-id``: masked in the
    error's text, repr, ``request_id`` and every log line."""
    caplog.set_level(logging.DEBUG, logger="tenancy")
    iid = emu.instance_ids[0]
    token = client.app_access_token(iid)  # the app token a Get App Instance call sends
    client.forget_app_token(iid)
    echoed = f"req-{SECRET}-OauthNG.JWS.echoed-{token}"
    body = b"not json" if status == 200 else b'{"message": "no"}'
    where = None if endpoint == "token_info" else iid
    emu.respond_with(
        endpoint, status=status, body=body, headers={"x-wix-request-id": echoed}, instance_id=where
    )
    with pytest.raises(TenancyError) as raised:
        if endpoint == "token_info":
            client.token_info("OauthNG.JWS.user-token")
        elif endpoint == "access_token":
            client.app_access_token(iid)
        else:
            emu.clear_overrides()
            client.app_access_token(iid)
            emu.respond_with(
                endpoint, status=status, body=body, headers={"x-wix-request-id": echoed}, instance_id=iid
            )
            client.get_app_instance(iid)
    text = _everything(raised.value) + caplog.text
    assert SECRET not in text and token not in text and "OauthNG.JWS.echoed" not in text
    request_id = getattr(raised.value, "request_id", None)
    if request_id is not None:
        assert request_id.startswith("req-***")


@pytest.mark.parametrize("token", ["OauthNG.JWS.\u4e2d", "OauthNG JWS", "tok\r\nX-Evil: 1", "\x00"])
def test_an_access_token_that_cannot_be_a_header_is_a_wix_error(
    emu: Emulator, client: WixClient, token: str
) -> None:
    """An app token that is not printable ASCII never reaches an Authorization header."""
    iid = emu.instance_ids[0]
    emu.respond_with(
        "access_token", status=200, body={"access_token": token, "expires_in": 14400}, instance_id=iid
    )
    with pytest.raises(WixError, match="no access_token"):
        client.get_app_instance(iid)
