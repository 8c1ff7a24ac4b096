"""WixClient over real HTTP against the emulator: request shapes, errors, retries, caching."""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tenancy.emulator import Emulator
from tenancy.errors import (
    InvalidToken,
    WixAuthError,
    WixError,
    WixInstanceNotAccessible,
    WixRateLimited,
    WixUnavailable,
)
from tenancy.wix.client import WixClient
from tenancy.wix.types import AppInstance, TokenInfo
from tests.wix_helpers import Clock, Sleeps, at_once, client_for, sample, sample_reply

SAMPLE_REQUEST_ID = "1700000000.000000000000000000"
SAMPLE_INSTANCE_ID = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"


@pytest.fixture
def emu() -> Iterator[Emulator]:
    """A fresh emulator with three seeded sites."""
    with Emulator(sites=3, seed=7, retry_after=0) as emulator:
        yield emulator


@pytest.fixture
def client(emu: Emulator) -> Iterator[WixClient]:
    """A WixClient for the emulator, with tiny backoffs."""
    with client_for(emu) as wix:
        yield wix


# --- request shapes (API.md §2.1, §3.1, §4.1) ---------------------------------------------


def test_token_info_request_matches_the_contract(emu: Emulator, client: WixClient) -> None:
    """Token Info is a JSON POST of exactly {"token": t}, without an Authorization header."""
    token = emu.mint_token(emu.instance_ids[0])
    client.token_info(token)
    request = emu.last_request("token_info")
    assert (request.method, request.path) == ("POST", "/oauth2/token-info")
    assert request.headers["content-type"] == "application/json"
    assert "authorization" not in request.headers
    assert request.json() == {"token": token}


def test_access_token_request_matches_the_contract(emu: Emulator, client: WixClient) -> None:
    """The client-credentials grant posts the four snake_case fields as JSON, nothing else."""
    iid = emu.instance_ids[0]
    client.app_access_token(iid)
    request = emu.last_request("access_token")
    assert (request.method, request.path) == ("POST", "/oauth2/token")
    assert request.headers["content-type"] == "application/json"
    assert "authorization" not in request.headers
    assert request.json() == {
        "grant_type": "client_credentials",
        "client_id": emu.app_id,
        "client_secret": emu.app_secret,
        "instance_id": iid,
    }
    assert set(request.json()) == set(sample("access-token-request.json"))


def test_get_app_instance_sends_the_bare_app_token(emu: Emulator, client: WixClient) -> None:
    """Get App Instance is a GET with the app token as the whole Authorization value."""
    iid = emu.instance_ids[1]
    client.get_app_instance(iid)
    token = client.app_access_token(iid)
    request = emu.last_request("get_app_instance")
    assert (request.method, request.path, request.body) == ("GET", "/apps/v1/instance", b"")
    assert request.headers["authorization"] == token
    assert not token.lower().startswith("bearer")


def test_get_app_instance_parses_what_the_site_reports(emu: Emulator, client: WixClient) -> None:
    """The parsed answer follows the emulated site, including changes made to it."""
    iid = emu.instance_ids[0]
    emu.update_site(iid, site_display_name="Renamed", is_free=False, billing_cycle="MONTHLY", time_zone="UTC")
    parsed = client.get_app_instance(uuid.UUID(iid))
    assert parsed.instance is not None and parsed.site is not None
    assert parsed.instance.instance_id == uuid.UUID(iid)
    assert parsed.site.site_display_name == "Renamed"
    assert parsed.site.time_zone == "UTC"
    assert parsed.instance.billing is not None and parsed.instance.billing.billing_cycle == "MONTHLY"
    assert parsed.raw == emu.site(iid).to_body()


def test_token_info_parses_the_emulator_answer(emu: Emulator, client: WixClient) -> None:
    """A minted token comes back active, for this app and its instance."""
    iid = emu.instance_ids[2]
    info = client.token_info(emu.mint_token(iid, subject_type="VISITOR"))
    assert info.active and info.client_id == emu.app_id
    assert info.instance_id == uuid.UUID(iid)
    assert info.subject_type == "VISITOR"
    assert info.site_id == emu.site(iid).site_id
    assert info.expires_at is not None and info.issued_at is not None


# --- the samples, served verbatim ---------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["get-app-instance-response-full.json", "get-app-instance-response-minimal.json"]
)
def test_app_instance_samples_parse_over_http(emu: Emulator, client: WixClient, name: str) -> None:
    """Both Get App Instance samples, served verbatim, parse like the body itself."""
    iid = emu.add_site(instance_id=SAMPLE_INSTANCE_ID)
    emu.respond_with("get_app_instance", status=200, body=sample(name))
    assert client.get_app_instance(iid) == AppInstance.from_json(sample(name))


def test_an_answer_about_another_instance_is_refused(emu: Emulator, client: WixClient) -> None:
    """Get App Instance naming another instance id raises instead of returning its data."""
    emu.respond_with("get_app_instance", status=200, body=sample("get-app-instance-response-full.json"))
    with pytest.raises(WixError, match=f"the answer is about instance {SAMPLE_INSTANCE_ID}") as raised:
        client.get_app_instance(emu.instance_ids[0])
    assert raised.value.request_id


@pytest.mark.parametrize("name", ["token-info-response.json", "token-info-response-inactive.json"])
def test_token_info_samples_parse_over_http(emu: Emulator, client: WixClient, name: str) -> None:
    """Both Token Info samples, served verbatim, parse like the body itself."""
    emu.respond_with("token_info", status=200, body=sample(name))
    assert client.token_info("any-token") == TokenInfo.from_json(sample(name))


def test_access_token_sample_response_is_used(emu: Emulator, client: WixClient) -> None:
    """The documented token response shape yields its access_token."""
    emu.respond_with("access_token", status=200, body=sample("access-token-response.json"))
    assert (
        client.app_access_token(emu.instance_ids[0]) == sample("access-token-response.json")["access_token"]
    )


@pytest.mark.parametrize(
    ("name", "endpoint", "error", "not_error"),
    [
        ("error-access-token-app-not-installed.json", "access_token", WixInstanceNotAccessible, None),
        ("error-access-token-invalid-client.json", "access_token", WixAuthError, WixInstanceNotAccessible),
        # Get App Instance refusing one instance is never the app's credentials (invariant 7).
        (
            "error-get-app-instance-401-unauthenticated.json",
            "get_app_instance",
            WixInstanceNotAccessible,
            None,
        ),
        (
            "error-get-app-instance-403-permission-denied.json",
            "get_app_instance",
            WixInstanceNotAccessible,
            None,
        ),
        ("error-get-app-instance-404-not-found.json", "get_app_instance", WixInstanceNotAccessible, None),
        ("error-429-resource-exhausted.json", "get_app_instance", WixRateLimited, None),
        ("error-500-system.json", "get_app_instance", WixUnavailable, None),
    ],
)
def test_error_samples_map_to_errors(
    emu: Emulator,
    name: str,
    endpoint: str,
    error: type[WixError],
    not_error: type[WixError] | None,
) -> None:
    """Each error sample raises its error, with the sample's status and request id."""
    emu.respond_with(endpoint, **sample_reply(name))
    with client_for(emu, max_retries=1) as client, pytest.raises(error) as raised:
        client.get_app_instance(emu.instance_ids[0])
    assert raised.value.status == sample(name)["status"]
    assert raised.value.request_id == SAMPLE_REQUEST_ID
    if not_error is not None:
        assert not isinstance(raised.value, not_error)


def test_error_messages_carry_wix_details(emu: Emulator, client: WixClient) -> None:
    """Messages name the endpoint, instance, status, Wix's code and description."""
    emu.respond_with("get_app_instance", **sample_reply("error-get-app-instance-404-not-found.json"))
    iid = emu.instance_ids[0]
    with pytest.raises(WixError) as raised:
        client.get_app_instance(iid)
    message = str(raised.value)
    for part in (
        "get_app_instance",
        iid,
        "HTTP 404",
        "NOT_FOUND",
        "App instance not found",
        SAMPLE_REQUEST_ID,
    ):
        assert part in message


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[]", {"errorCode": "X", "errorDescription": "invalid_token"}, {"message": "m"}],
)
def test_error_bodies_are_parsed_tolerantly(emu: Emulator, client: WixClient, body: object) -> None:
    """Odd error bodies still give a WixAuthError with status and request id."""
    emu.respond_with("get_app_instance", status=403, body=body, headers={"x-wix-request-id": "r-1"})
    with pytest.raises(WixAuthError) as raised:
        client.get_app_instance(emu.instance_ids[0])
    assert (raised.value.status, raised.value.request_id) == (403, "r-1")


# --- token endpoint refusals ----------------------------------------------------------------


def test_wrong_secret_is_an_auth_error_not_an_instance_problem(emu: Emulator) -> None:
    """Bad credentials raise WixAuthError (401), which is not WixInstanceNotAccessible."""
    client = WixClient(emu.app_id, "wrong-secret", base_url=emu.base_url)
    with client, pytest.raises(WixAuthError) as raised:
        client.get_app_instance(emu.instance_ids[0])
    assert raised.value.status == 401
    assert not isinstance(raised.value, WixInstanceNotAccessible)
    assert "invalid_client" in str(raised.value)


def test_removed_app_is_not_accessible_until_reinstalled(emu: Emulator, client: WixClient) -> None:
    """A removed app's instance is refused by the token endpoint; a reinstall brings it back."""
    iid = emu.instance_ids[0]
    emu.remove_app(iid)
    with pytest.raises(WixInstanceNotAccessible) as raised:
        client.get_app_instance(iid)
    assert raised.value.status == 400
    assert emu.count("get_app_instance") == 0
    emu.reinstall_app(iid)
    assert client.get_app_instance(iid).instance is not None


def test_unknown_instance_is_not_accessible(client: WixClient) -> None:
    """An instance id Wix never heard of is WixInstanceNotAccessible too."""
    with pytest.raises(WixInstanceNotAccessible):
        client.app_access_token(uuid.uuid4())


def test_app_removed_while_token_cached_gives_404(emu: Emulator, client: WixClient) -> None:
    """With a still-valid cached token, a removed app's Get App Instance is a 404 WixError."""
    iid = emu.instance_ids[0]
    client.get_app_instance(iid)
    emu.remove_app(iid)
    with pytest.raises(WixError) as raised:
        client.get_app_instance(iid)
    assert raised.value.status == 404


def test_token_info_refusal_is_invalid_token(emu: Emulator, client: WixClient) -> None:
    """A 4xx from Token Info means the token was refused: InvalidToken."""
    emu.respond_with("token_info", status=401, body={"message": "UNAUTHENTICATED", "details": {}})
    with pytest.raises(InvalidToken) as raised:
        client.token_info("some-token")
    assert raised.value.reason == "Token Info answered HTTP 401"


def test_token_info_of_a_garbage_token_is_inactive(client: WixClient) -> None:
    """The emulator answers an unknown token like RFC 7662: active false."""
    assert client.token_info("garbage").active is False


# --- app token cache --------------------------------------------------------------------------


def test_app_token_is_cached(emu: Emulator, client: WixClient) -> None:
    """Several calls for one instance make one token request."""
    iid = emu.instance_ids[0]
    for _ in range(3):
        client.get_app_instance(iid)
    assert emu.count("access_token", iid) == 1
    assert emu.count("get_app_instance", iid) == 3


def test_app_token_is_refreshed_before_expiry(emu: Emulator) -> None:
    """A token is reused until expires_in minus the skew, then fetched again."""
    clock = Clock()
    iid = emu.instance_ids[0]
    with client_for(emu, clock=clock, token_refresh_skew=300) as client:
        first = client.app_access_token(iid)
        clock.now += emu.token_ttl - 301
        assert client.app_access_token(iid) == first
        clock.now += 2
        assert client.app_access_token(iid) != first
    assert emu.count("access_token") == 2


def test_short_lived_tokens_are_cached_for_half_their_life(emu: Emulator) -> None:
    """The refresh skew never exceeds half the lifetime, so a short token is still cached."""
    clock = Clock()
    emu.token_ttl = 100
    iid = emu.instance_ids[0]
    with client_for(emu, clock=clock, token_refresh_skew=300) as client:
        client.app_access_token(iid)
        clock.now += 49
        client.app_access_token(iid)
        assert emu.count("access_token") == 1
        clock.now += 2
        client.app_access_token(iid)
        assert emu.count("access_token") == 2


def test_app_token_cache_is_bounded(emu: Emulator) -> None:
    """The least recently used instance's token is evicted past token_cache_size."""
    a, b, c = emu.instance_ids
    with client_for(emu, token_cache_size=2) as client:
        for iid in (a, b, a, c, a, b):
            client.app_access_token(iid)
    # a stays hot; b was evicted by c and fetched again.
    assert [emu.count("access_token", iid) for iid in (a, b, c)] == [1, 2, 1]


def test_concurrent_callers_share_one_token_request(emu: Emulator, client: WixClient) -> None:
    """64 threads asking for one instance's token at once make exactly one request."""
    emu.set_latency(0.05)
    iid = emu.instance_ids[0]
    tokens = at_once(64, lambda: client.app_access_token(iid))
    assert len(tokens) == 64 and len(set(tokens)) == 1
    assert all(isinstance(token, str) for token in tokens)
    assert emu.count("access_token") == 1


def test_concurrent_failure_reaches_every_caller(emu: Emulator, client: WixClient) -> None:
    """When the shared token request fails, every waiting caller gets the error."""
    emu.set_latency(0.05)
    iid = emu.instance_ids[0]
    emu.remove_app(iid)
    errors = at_once(16, lambda: client.app_access_token(iid))
    assert len(errors) == 16 and all(isinstance(e, WixInstanceNotAccessible) for e in errors)
    assert emu.count("access_token") <= 2  # one flight, or two if a thread arrived after it ended


def test_401_drops_the_token_and_retries_once(emu: Emulator, client: WixClient) -> None:
    """An app token Wix no longer accepts is dropped, refetched, and the call retried once."""
    iid = emu.instance_ids[0]
    old = client.app_access_token(iid)
    emu.expire_app_tokens(iid)
    assert client.get_app_instance(iid).instance is not None
    assert client.app_access_token(iid) != old
    assert emu.count("access_token") == 2
    assert emu.count("get_app_instance") == 2


def test_401_twice_is_an_auth_error(emu: Emulator, client: WixClient) -> None:
    """If the fresh token is refused too, the call fails with WixAuthError after two tries."""
    emu.respond_with("get_app_instance", **sample_reply("error-get-app-instance-401-unauthenticated.json"))
    with pytest.raises(WixAuthError):
        client.get_app_instance(emu.instance_ids[0])
    assert emu.count("get_app_instance") == 2
    assert emu.count("access_token") == 2


# --- retries ------------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["token_info", "access_token", "get_app_instance"])
def test_429_storm_within_budget_succeeds(emu: Emulator, endpoint: str) -> None:
    """A run of 429s shorter than the retry budget is absorbed, on every endpoint (POSTs too)."""
    iid = emu.instance_ids[0]
    token = emu.mint_token(iid)
    emu.set_faults(rate=1.0, kinds=("429",), endpoints=[endpoint], times=3)
    with client_for(emu, max_retries=3) as client:
        assert client.token_info(token).active
        assert client.get_app_instance(iid).instance is not None
    assert emu.count(endpoint) == 4
    assert emu.count("fault:429") == 3


def test_429_past_budget_is_rate_limited(emu: Emulator) -> None:
    """429s beyond the budget raise WixRateLimited with the last status and request id."""
    emu.set_faults(rate=1.0, kinds=("429",), endpoints=["get_app_instance"])
    with client_for(emu, max_retries=2) as client, pytest.raises(WixRateLimited) as raised:
        client.get_app_instance(emu.instance_ids[0])
    assert raised.value.status == 429
    assert raised.value.request_id
    assert emu.count("get_app_instance") == 3
    assert "after 3 attempts" in str(raised.value)


@pytest.mark.parametrize("kind", ["500", "503"])
def test_5xx_burst_within_budget_succeeds(emu: Emulator, kind: str) -> None:
    """A short burst of 5xx answers is retried away."""
    emu.set_faults(rate=1.0, kinds=(kind,), times=2)
    with client_for(emu, max_retries=2) as client:
        assert client.get_app_instance(emu.instance_ids[0]).site is not None


def test_5xx_past_budget_is_unavailable(emu: Emulator) -> None:
    """5xx beyond the budget raises WixUnavailable with the status."""
    emu.set_faults(rate=1.0, kinds=("503",), endpoints=["access_token"])
    with client_for(emu, max_retries=1) as client, pytest.raises(WixUnavailable) as raised:
        client.get_app_instance(emu.instance_ids[0])
    assert raised.value.status == 503
    assert emu.count("access_token") == 2


def test_retry_after_as_an_http_date_is_honoured(emu: Emulator) -> None:
    """Retry-After may also be an HTTP date; the wait is the time until then."""
    when = email.utils.format_datetime(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30), usegmt=True)
    headers = {"Retry-After": when}
    emu.respond_with(
        "get_app_instance",
        status=429,
        body=sample("error-429-resource-exhausted.json")["body"],
        headers=headers,
        times=1,
    )
    sleeps = Sleeps()
    with client_for(emu, sleep=sleeps, retry_after_max=60) as client:
        client.get_app_instance(emu.instance_ids[0])
    assert len(sleeps.calls) == 1 and 20 < sleeps.calls[0] <= 30


def test_retry_after_is_honoured_and_capped(emu: Emulator) -> None:
    """Retry-After sets the wait (capped at retry_after_max) instead of the backoff."""
    emu.retry_after = 7
    emu.set_faults(rate=1.0, kinds=("429-retry-after",), times=2)
    sleeps = Sleeps()
    with client_for(emu, sleep=sleeps, retry_after_max=60) as client:
        client.get_app_instance(emu.instance_ids[0])
    assert sleeps.calls == [7, 7]
    emu.retry_after = 600
    emu.set_faults(rate=1.0, kinds=("429-retry-after",), times=1)
    sleeps.calls.clear()
    with client_for(emu, sleep=sleeps, retry_after_max=60) as client:
        client.get_app_instance(emu.instance_ids[1])
    assert sleeps.calls == [60]


def test_backoff_grows_exponentially_with_jitter(emu: Emulator) -> None:
    """Without Retry-After each wait lies in [cap/2, cap] with cap doubling per attempt."""
    emu.set_faults(rate=1.0, kinds=("500",), times=4)
    sleeps = Sleeps()
    with client_for(emu, sleep=sleeps, max_retries=4, backoff_base=1.0, backoff_max=5.0) as client:
        client.get_app_instance(emu.instance_ids[0])
    caps = [1.0, 2.0, 4.0, 5.0]
    assert len(sleeps.calls) == 4
    for delay, cap in zip(sleeps.calls, caps, strict=True):
        assert cap / 2 <= delay <= cap


@pytest.mark.parametrize("endpoint", ["token_info", "get_app_instance"])
def test_malformed_json_is_a_wix_error(emu: Emulator, client: WixClient, endpoint: str) -> None:
    """A 200 whose body is not JSON raises WixError (never a ValueError), without retrying."""
    emu.set_faults(rate=1.0, kinds=("malformed",), endpoints=[endpoint])
    token = emu.mint_token(emu.instance_ids[0])
    with pytest.raises(WixError) as raised:
        if endpoint == "token_info":
            client.token_info(token)
        else:
            client.get_app_instance(emu.instance_ids[0])
    assert type(raised.value) is WixError
    assert not isinstance(raised.value, ValueError)
    assert raised.value.status == 200 and "not JSON" in str(raised.value)
    assert raised.value.__context__ is None and raised.value.__cause__ is None
    assert emu.count(endpoint) == 1


def test_dropped_connections_are_retried(emu: Emulator) -> None:
    """A connection closed without an answer is retried."""
    emu.set_faults(rate=1.0, kinds=("drop",), times=2)
    with client_for(emu, max_retries=2) as client:
        assert client.get_app_instance(emu.instance_ids[0]).instance is not None


def test_dropped_connections_past_budget_are_unavailable(emu: Emulator) -> None:
    """Connections dropped past the budget raise WixUnavailable without a status."""
    emu.set_faults(rate=1.0, kinds=("drop",))
    with client_for(emu, max_retries=2) as client, pytest.raises(WixUnavailable) as raised:
        client.get_app_instance(emu.instance_ids[0])
    assert raised.value.status is None
    assert "connection failed after 3 attempts" in str(raised.value)
    assert emu.count("access_token") == 3


def test_timeout_is_honoured(emu: Emulator) -> None:
    """A stalled answer ends in the client's timeout (not the 2 s stall), then WixUnavailable."""
    emu.set_faults(rate=1.0, kinds=("timeout",), endpoints=["get_app_instance"])
    with client_for(emu, timeout=0.3, max_retries=1) as client, pytest.raises(WixUnavailable) as raised:
        client.get_app_instance(emu.instance_ids[0])
    assert "timed out after 0.3s after 2 attempts" in str(raised.value)


def test_unreachable_wix_is_unavailable() -> None:
    """Nothing listening at the base URL raises WixUnavailable after the retries."""
    with Emulator(sites=0) as gone:
        base_url = gone.base_url
    client = WixClient("app", "secret", base_url=base_url, max_retries=1, backoff_base=0.001)
    with client, pytest.raises(WixUnavailable):
        client.token_info("token")


def test_random_faults_at_a_rate_are_absorbed(emu: Emulator) -> None:
    """With 30% random transient faults and a budget of 6, a hundred calls all succeed."""
    emu.set_faults(rate=0.3, kinds=("429", "500", "503", "drop"), seed=3)
    with client_for(emu, max_retries=6) as client:
        for number in range(100):
            client.get_app_instance(emu.instance_ids[number % 3])
    assert emu.count("fault") > 0


def test_own_session_has_a_pool_for_many_threads(emu: Emulator) -> None:
    """When the client builds its session, the connection pool holds 64 connections."""
    with client_for(emu) as client:
        adapter = client._http.get_adapter(emu.base_url)
        assert adapter._pool_maxsize == 64  # type: ignore[attr-defined]


def test_injected_session_is_used_and_left_open(emu: Emulator) -> None:
    """A caller's requests.Session carries the requests (its headers included) and stays open."""
    session = requests.Session()
    session.headers["User-Agent"] = "my-backend/1.0"
    with WixClient(emu.app_id, emu.app_secret, base_url=emu.base_url, http=session) as client:
        client.get_app_instance(emu.instance_ids[0])
    assert emu.last_request("get_app_instance").headers["user-agent"] == "my-backend/1.0"
    assert session.get(emu.base_url + "/_emulator/stats", timeout=5).ok  # not closed by the client
    session.close()


def test_retries_are_logged_with_status_and_request_id(
    emu: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    """Each retry logs the endpoint, the instance, the status and Wix's request id on tenancy.wix,
    at DEBUG: a Wix outage must not flood the log with a line per retry per tenant."""
    caplog.set_level(logging.DEBUG, logger="tenancy.wix")
    iid = emu.instance_ids[0]
    emu.set_faults(rate=1.0, kinds=("503",), endpoints=["get_app_instance"], times=1)
    with client_for(emu) as client:
        client.get_app_instance(iid)
    (record,) = [r for r in caplog.records if r.name == "tenancy.wix"]
    message = record.getMessage()
    assert f"get_app_instance for instance {iid}: HTTP 503 (request id " in message
    assert "retry 1 of 3" in message
    assert record.levelno == logging.DEBUG


# --- the environment (read once, when the client is built) --------------------------------


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def clean_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


def test_a_proxy_in_the_environment_is_used_and_no_proxy_honoured(
    emu: Emulator, clean_proxy_env: pytest.MonkeyPatch
) -> None:
    """HTTP_PROXY/HTTPS_PROXY and NO_PROXY apply as with requests (read when the client is built)."""
    iid = uuid.UUID(emu.instance_ids[0])
    clean_proxy_env.setenv("HTTP_PROXY", f"http://127.0.0.1:{_unused_port()}")  # nothing listens
    through_proxy = WixClient(emu.app_id, emu.app_secret, base_url=emu.base_url, max_retries=0)
    with through_proxy, pytest.raises(WixUnavailable, match="connection failed"):
        through_proxy.get_app_instance(iid)
    assert emu.counts.get("access_token", 0) == 0  # nothing reached Wix: it went to the proxy
    clean_proxy_env.setenv("NO_PROXY", "127.0.0.1")
    with WixClient(emu.app_id, emu.app_secret, base_url=emu.base_url, max_retries=0) as direct:
        assert direct.get_app_instance(iid).instance is not None


def test_netrc_credentials_never_replace_the_wix_authorization(
    emu: Emulator, clean_proxy_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """requests applies ~/.netrc to a request without auth=, over the Authorization header the
    Wix calls carry; the client never reads it."""
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password something\n")
    netrc.chmod(0o600)
    clean_proxy_env.setenv("NETRC", str(netrc))
    with WixClient(emu.app_id, emu.app_secret, base_url=emu.base_url, max_retries=0) as client:
        assert client.get_app_instance(uuid.UUID(emu.instance_ids[0])).instance is not None
