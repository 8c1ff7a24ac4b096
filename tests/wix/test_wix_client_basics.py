"""WixClient checks that need no server: argument validation and repr."""

from __future__ import annotations

import uuid

import pytest

from tenancy.errors import ConfigurationError, InvalidInstanceId, WixError, WixUnavailable
from tenancy.instance_ids import parse_instance_id
from tenancy.settings import Settings
from tenancy.wix.client import WixClient

SECRET = "dummy-app-secret-0123456789abcdef"


@pytest.mark.parametrize("bad", ["", "nope", "aaaaaaaa-bbbb-cccc-dddd", None, 42, b"x", ["a"]])
def test_invalid_instance_id_is_refused_before_any_request(bad: object) -> None:
    """A value that is not a UUID raises InvalidInstanceId without touching the network."""
    # The base URL points nowhere reachable: a request would be a different error.
    client = WixClient("app", SECRET, base_url="http://127.0.0.1:9", max_retries=0)
    with pytest.raises(InvalidInstanceId):
        client.app_access_token(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInstanceId):
        client.get_app_instance(bad)  # type: ignore[arg-type]


def test_parse_instance_id_accepts_uuid_and_strings() -> None:
    """UUID objects and any string uuid.UUID() parses are accepted."""
    value = uuid.UUID("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee")
    assert parse_instance_id(value) is value
    assert parse_instance_id("AAAAAAAABBBBCCCCDDDDEEEEEEEEEEEE") == value


def test_invalid_instance_id_message_does_not_echo_the_value() -> None:
    """The error names the problem, not the value (it could be a misplaced token)."""
    with pytest.raises(InvalidInstanceId) as info:
        parse_instance_id("OauthNG.JWS.secret-looking")
    assert "OauthNG" not in str(info.value)


def test_repr_shows_app_id_and_base_url_only() -> None:
    """repr(WixClient) names the app and the base URL, never the secret."""
    client = WixClient("my-app", SECRET, base_url="http://example.test/")
    assert repr(client) == "WixClient(app_id='my-app', base_url='http://example.test')"
    assert SECRET not in repr(client)


def test_credentials_are_required() -> None:
    """An empty app id or secret is refused at construction."""
    with pytest.raises(ConfigurationError):
        WixClient("", SECRET)
    with pytest.raises(ConfigurationError):
        WixClient("app", "")


def test_from_settings_uses_credentials_and_base_url() -> None:
    """from_settings takes the app id, secret and base URL from Settings."""
    settings = Settings(wix_app_id="app", wix_app_secret=SECRET, wix_api_base_url="http://127.0.0.1:9")
    client = WixClient.from_settings(settings, timeout=1.0)
    assert (client.app_id, client.base_url) == ("app", "http://127.0.0.1:9")


def test_from_settings_without_credentials_is_a_configuration_error() -> None:
    """Missing WIX_APP_ID or WIX_APP_SECRET is reported as configuration, naming the variables."""
    with pytest.raises(ConfigurationError, match="WIX_APP_ID and WIX_APP_SECRET"):
        WixClient.from_settings(Settings(wix_app_id="app"))


def test_a_request_that_cannot_be_sent_is_a_wix_error_without_retries() -> None:
    """A non-transient requests failure (no host in the URL) is a WixError at once, unchained."""
    sleeps: list[float] = []
    client = WixClient("app", SECRET, base_url="http://", sleep=sleeps.append)
    with pytest.raises(WixError) as raised:
        client.app_access_token("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee")
    assert "request failed (InvalidURL)" in str(raised.value)
    assert not isinstance(raised.value, WixUnavailable)
    assert raised.value.__context__ is None and sleeps == []
