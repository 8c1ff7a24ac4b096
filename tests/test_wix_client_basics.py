"""WixClient checks that need no server: argument validation and repr."""

from __future__ import annotations

import uuid

import pytest

from tenancy.errors import ConfigurationError, InvalidInstanceId
from tenancy.wix import WixClient, parse_instance_id

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
