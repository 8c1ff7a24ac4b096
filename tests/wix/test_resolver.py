"""TokenResolver against the emulator: acceptance rules, refusals, cache, single-flight."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from tenancy.emulator import Emulator
from tenancy.errors import ConfigurationError, InvalidToken, WixError, WixRateLimited, WixUnavailable
from tenancy.wix.client import WixClient
from tenancy.wix.resolver import MAX_TOKEN_LENGTH, TokenResolver
from tests.wix_helpers import Clock, at_once, client_for


@pytest.fixture
def emu() -> Iterator[Emulator]:
    """A fresh emulator with two seeded sites."""
    with Emulator(sites=2, seed=11) as emulator:
        yield emulator


@pytest.fixture
def client(emu: Emulator) -> Iterator[WixClient]:
    """A WixClient for the emulator, with tiny backoffs."""
    with client_for(emu, max_retries=1) as wix:
        yield wix


@pytest.fixture
def resolver(client: WixClient) -> TokenResolver:
    """A resolver with default settings."""
    return TokenResolver(client)


def test_resolve_instance_id_returns_the_tenant_key(emu: Emulator, resolver: TokenResolver) -> None:
    """resolve_instance_id gives the verified instance id as a UUID, with the same refusals."""
    iid = emu.instance_ids[1]
    assert resolver.resolve_instance_id("Bearer " + emu.mint_token(iid)) == uuid.UUID(iid)
    with pytest.raises(InvalidToken):
        resolver.resolve_instance_id(emu.mint_token(iid, client_id="other"))


def test_an_empty_resolver_is_truthy(resolver: TokenResolver) -> None:
    """`if resolver:` must not mistake an empty cache for a missing resolver."""
    assert resolver.cached == 0 and bool(resolver)


def test_a_valid_token_resolves_to_its_instance(emu: Emulator, resolver: TokenResolver) -> None:
    """An active token of this app resolves to its instance id as a UUID."""
    iid = emu.instance_ids[0]
    info = resolver.resolve(emu.mint_token(iid))
    assert info.instance_id == uuid.UUID(iid)
    assert info.active and info.client_id == emu.app_id
    assert info.site_id == emu.site(iid).site_id
    assert info.subject_type == "USER" and info.expires_at is not None


@pytest.mark.parametrize("prefix", ["Bearer ", "bearer ", "BEARER ", "Bearer   "])
def test_bearer_prefix_is_stripped(emu: Emulator, resolver: TokenResolver, prefix: str) -> None:
    """ "Bearer <token>" (any case) resolves like the bare token and shares its cache entry."""
    token = emu.mint_token(emu.instance_ids[0])
    assert resolver.resolve(prefix + token) == resolver.resolve(token)
    assert emu.last_request("token_info").json() == {"token": token}
    assert emu.count("token_info") == 1


# --- refusals -------------------------------------------------------------------------------


def _refusal(resolver: TokenResolver, token: str) -> InvalidToken:
    with pytest.raises(InvalidToken) as raised:
        resolver.resolve(token)
    assert str(raised.value) == "token rejected"  # uniform, whatever the reason
    return raised.value


def test_inactive_token_is_refused(emu: Emulator, resolver: TokenResolver) -> None:
    """A token Token Info calls inactive (here: expired) is refused."""
    assert _refusal(resolver, emu.mint_token(emu.instance_ids[0], ttl=-10)).reason == "inactive"


def test_removed_apps_token_is_refused(emu: Emulator, resolver: TokenResolver) -> None:
    """Once the app is removed its tokens go inactive and are refused."""
    iid = emu.instance_ids[0]
    token = emu.mint_token(iid)
    emu.remove_app(iid)
    assert _refusal(resolver, token).reason == "inactive"


def test_another_apps_token_is_refused(emu: Emulator, resolver: TokenResolver) -> None:
    """An active token issued for another app id is refused."""
    token = emu.mint_token(emu.instance_ids[0], client_id=str(uuid.uuid4()))
    assert _refusal(resolver, token).reason == "issued for another app"


@pytest.mark.parametrize("instance_id", [None, "", "not-a-uuid", 42])
def test_token_without_instance_is_refused(
    emu: Emulator, resolver: TokenResolver, instance_id: object
) -> None:
    """An active token of this app without a (valid) instance id is refused."""
    body: dict[str, object] = {"active": True, "clientId": emu.app_id, "subjectType": "USER"}
    if instance_id is not None:
        body["instanceId"] = instance_id
    emu.respond_with("token_info", status=200, body=body)
    assert _refusal(resolver, "OauthNG.JWS.some-token").reason == "no instance id"


def test_garbage_token_is_refused(resolver: TokenResolver) -> None:
    """A well-formed token Wix does not know is refused."""
    assert _refusal(resolver, "OauthNG.JWS.unknown").reason == "inactive"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409])
def test_token_info_4xx_is_refused(emu: Emulator, resolver: TokenResolver, status: int) -> None:
    """Token Info answering 4xx means the token is refused."""
    emu.respond_with("token_info", status=status, body={"message": "no", "details": {}})
    assert _refusal(resolver, "OauthNG.JWS.t").reason == f"Token Info answered HTTP {status}"


@pytest.mark.parametrize(
    "token",
    ["", "Bearer ", "bearer", "   ", "a b", "tab\there", "line\nbreak", "nul\x00", "é-accent",
     "x" * (MAX_TOKEN_LENGTH + 1), "Bearer " + "x" * (MAX_TOKEN_LENGTH + 1), "\ud800", None, 42, b"bytes"],
)  # fmt: skip
def test_malformed_tokens_are_refused_without_a_request(
    emu: Emulator, resolver: TokenResolver, token: object
) -> None:
    """Empty, oversized, non-printable, spaced or non-string tokens never reach Wix."""
    _refusal(resolver, token)  # type: ignore[arg-type]
    assert emu.count("token_info") == 0


def test_longest_allowed_token_is_asked_about(emu: Emulator, resolver: TokenResolver) -> None:
    """A token of exactly MAX_TOKEN_LENGTH characters is sent to Token Info."""
    _refusal(resolver, "x" * MAX_TOKEN_LENGTH)
    assert emu.count("token_info") == 1


def test_wix_unreachable_is_not_a_refusal(emu: Emulator, resolver: TokenResolver) -> None:
    """Wix failing raises WixUnavailable (503 material), not InvalidToken, and nothing is cached."""
    token = emu.mint_token(emu.instance_ids[0])
    emu.set_faults(rate=1.0, kinds=("503",))
    with pytest.raises(WixUnavailable) as raised:
        resolver.resolve(token)
    assert not isinstance(raised.value, InvalidToken)
    emu.clear_faults()
    assert resolver.resolve(token).instance_id is not None  # not remembered as a refusal


def test_wix_rate_limiting_is_not_a_refusal(emu: Emulator, resolver: TokenResolver) -> None:
    """429 past the budget raises WixRateLimited."""
    emu.set_faults(rate=1.0, kinds=("429",))
    with pytest.raises(WixRateLimited):
        resolver.resolve(emu.mint_token(emu.instance_ids[0]))


def test_garbled_token_info_is_a_wix_error(emu: Emulator, resolver: TokenResolver) -> None:
    """A non-JSON Token Info answer raises WixError, never a tenant."""
    emu.set_faults(rate=1.0, kinds=("malformed",))
    with pytest.raises(WixError):
        resolver.resolve(emu.mint_token(emu.instance_ids[0]))


def test_a_refusal_is_remembered_for_refusal_ttl(emu: Emulator, client: WixClient) -> None:
    """A client repeating a refused token gets InvalidToken without another Token Info call,
    for ``refusal_ttl`` seconds; then Wix is asked again."""
    clock = Clock(time.time())
    resolver = TokenResolver(client, clock=clock, refusal_ttl=300)
    token = emu.mint_token(emu.instance_ids[0])
    emu.respond_with("token_info", status=200, body={"active": False}, times=1)
    assert _refusal(resolver, token).reason == "inactive"
    clock.now += 299
    assert _refusal(resolver, "Bearer " + token).reason == "inactive"  # same reason, for logs
    assert emu.count("token_info") == 1
    assert resolver.cached == 0  # the refusal is not an answer to hand out
    clock.now += 2
    assert resolver.resolve(token).active
    assert emu.count("token_info") == 2


def test_a_token_info_4xx_refusal_is_remembered(emu: Emulator, resolver: TokenResolver) -> None:
    """Token Info refusing the token (4xx) is remembered like an inactive answer."""
    emu.respond_with("token_info", status=401, body={"message": "no", "details": {}}, times=1)
    for _ in range(3):
        assert _refusal(resolver, "OauthNG.JWS.t").reason == "Token Info answered HTTP 401"
    assert emu.count("token_info") == 1


@pytest.mark.parametrize(
    ("status", "body"),
    [(403, {"message": "no", "details": {}}), (400, {"error": "invalid_token", "error_description": "bad"})],
)
def test_wix_refusing_the_token_itself_is_remembered(
    emu: Emulator, resolver: TokenResolver, status: int, body: object
) -> None:
    """403 and 400 ``invalid_token`` are verdicts on the token: remembered like 401."""
    emu.respond_with("token_info", status=status, body=body, times=1)
    for _ in range(2):
        assert _refusal(resolver, "OauthNG.JWS.t").definite
    assert emu.count("token_info") == 1


# Answers that are not a verdict on the token: a transient status, a garbled body, another 4xx.
_NO_VERDICT = [
    (408, {"message": "timeout"}),
    (429, {"message": "slow down"}),
    (500, {"message": "boom"}),
    (503, b""),
    (200, {}),
    (200, b"not json"),
    (200, b"[[[[" * 5_000),
    (200, {"active": "perhaps"}),
    (200, {"active": True, "clientId": 7, "instanceId": "x"}),
    (200, {"active": True, "exp": "tomorrow"}),
    (400, {"error": "invalid_request"}),
    (404, {"message": "not found"}),
]


@pytest.mark.parametrize(("status", "body"), _NO_VERDICT)
def test_an_answer_that_is_no_verdict_is_never_remembered(
    emu: Emulator, resolver: TokenResolver, status: int, body: object
) -> None:
    """One transient or garbled Token Info answer refuses nothing for later: the next call asks
    Wix again and a valid token is accepted at once."""
    token = emu.mint_token(emu.instance_ids[0])
    emu.respond_with("token_info", status=status, body=body, times=2)  # every attempt of one call
    with pytest.raises((InvalidToken, WixError)) as raised:
        resolver.resolve(token)
    assert not getattr(raised.value, "definite", False)
    emu.clear_overrides()
    asked = emu.count("token_info")
    assert resolver.resolve(token).instance_id == uuid.UUID(emu.instance_ids[0])
    assert emu.count("token_info") == asked + 1


def test_a_transient_408_is_retried_then_unavailable(emu: Emulator, resolver: TokenResolver) -> None:
    """408 is Wix not answering in time: retried like a 5xx, then WixUnavailable (503), not 401."""
    emu.respond_with("token_info", status=408, body={"message": "timeout"})
    with pytest.raises(WixUnavailable):
        resolver.resolve(emu.mint_token(emu.instance_ids[0]))
    assert emu.count("token_info") == 2  # max_retries=1


@pytest.mark.parametrize("exp_delta", [-3600.5, -31.25])
def test_a_fractional_exp_in_the_past_is_honoured(
    emu: Emulator, resolver: TokenResolver, exp_delta: float
) -> None:
    """``exp`` with a fraction (a NumericDate), an hour or 31.25 s old, refuses the token."""
    exp = time.time() + exp_delta
    body = {"active": True, "clientId": emu.app_id, "instanceId": emu.instance_ids[0], "exp": exp}
    emu.respond_with("token_info", status=200, body=body)
    assert _refusal(resolver, "OauthNG.JWS.t").reason == "expired"


@pytest.mark.parametrize(
    "exp", [-1, -62135596800, "-62135596800", "soon", True, "NaN", "Infinity", 10**30, "", [1], {"s": 1}]
)
def test_an_exp_that_is_not_a_numeric_date_refuses_the_token(
    emu: Emulator, resolver: TokenResolver, exp: object
) -> None:
    """Negative, year 1, a word, a bool, NaN, infinite, huge: the token is refused, never taken as
    one without expiry."""
    body = {"active": True, "clientId": emu.app_id, "instanceId": emu.instance_ids[0], "exp": exp}
    emu.respond_with("token_info", status=200, body=body)
    assert _refusal(resolver, "OauthNG.JWS.t").reason == "exp is not a NumericDate"


def test_an_exp_of_nan_or_infinity_on_the_wire_refuses_the_token(
    emu: Emulator, resolver: TokenResolver
) -> None:
    """Python's JSON reads the literals NaN and Infinity: still not a NumericDate."""
    for literal in (b"NaN", b"Infinity", b"-Infinity", b"1e400"):
        body = b'{"active": true, "clientId": "%s", "instanceId": "%s", "exp": %s}' % (
            emu.app_id.encode(),
            emu.instance_ids[0].encode(),
            literal,
        )
        emu.respond_with("token_info", status=200, body=body)
        assert _refusal(resolver, "OauthNG.JWS.t").reason == "exp is not a NumericDate"


def test_refusal_ttl_zero_asks_every_time(emu: Emulator, client: WixClient) -> None:
    """With ``refusal_ttl=0`` a refused token is asked about again next time."""
    resolver = TokenResolver(client, refusal_ttl=0)
    token = emu.mint_token(emu.instance_ids[0])
    emu.respond_with("token_info", status=200, body={"active": False}, times=1)
    _refusal(resolver, token)
    assert resolver.resolve(token).active
    assert emu.count("token_info") == 2


def test_remembered_refusals_are_bounded_hashed_and_cleared(emu: Emulator, client: WixClient) -> None:
    """At most ``max_entries`` refusals are kept, by digest; ``clear()`` forgets them."""
    resolver = TokenResolver(client, max_entries=2)
    tokens = [f"OauthNG.JWS.unknown-{n}" for n in range(3)]
    for token in tokens:
        _refusal(resolver, token)
    assert len(resolver._refused) == 2
    assert not any(t.encode() in b"".join(resolver._refused) for t in tokens)
    _refusal(resolver, tokens[2])  # kept
    assert emu.count("token_info") == 3
    _refusal(resolver, tokens[0])  # evicted first: asked again
    assert emu.count("token_info") == 4
    resolver.clear()
    _refusal(resolver, tokens[0])
    assert emu.count("token_info") == 5


# --- cache ----------------------------------------------------------------------------------


def test_cache_hit_makes_no_request(emu: Emulator, resolver: TokenResolver) -> None:
    """Resolving the same token again is answered from the cache."""
    token = emu.mint_token(emu.instance_ids[0])
    first = resolver.resolve(token)
    for _ in range(5):
        assert resolver.resolve(token) is first
    assert emu.count("token_info") == 1


def test_entry_expires_after_max_ttl(emu: Emulator, client: WixClient) -> None:
    """After max_ttl seconds the token is resolved again."""
    clock = Clock(time.time())
    resolver = TokenResolver(client, max_ttl=300, clock=clock)
    token = emu.mint_token(emu.instance_ids[0], ttl=3600)
    resolver.resolve(token)
    clock.now += 299
    resolver.resolve(token)
    assert emu.count("token_info") == 1
    clock.now += 2
    resolver.resolve(token)
    assert emu.count("token_info") == 2


def test_entry_never_outlives_the_tokens_exp(emu: Emulator, client: WixClient) -> None:
    """A token expiring before max_ttl is re-resolved once its exp has passed."""
    clock = Clock(time.time())
    resolver = TokenResolver(client, max_ttl=300, clock=clock)
    token = emu.mint_token(emu.instance_ids[0], ttl=60)
    resolver.resolve(token)
    clock.now += 62
    resolver.resolve(token)  # the emulator's real clock still calls it active
    assert emu.count("token_info") == 2


def test_token_past_exp_is_refused_even_if_wix_says_active(emu: Emulator, client: WixClient) -> None:
    """Token Info answering active: true with an exp beyond the 30 s leeway is refused (and the
    refusal remembered), never cached as an answer."""
    clock = Clock(time.time() + 7200)
    resolver = TokenResolver(client, clock=clock)
    token = emu.mint_token(emu.instance_ids[0], ttl=60)  # the emulator's real clock: active
    for _ in range(2):
        with pytest.raises(InvalidToken) as refused:
            resolver.resolve(token)
        assert refused.value.reason == "expired"
    assert emu.count("token_info") == 1  # the refusal is remembered ...
    assert resolver.cached == 0  # ... and the token never cached as an answer


def test_served_exp_in_the_past_is_refused(emu: Emulator, client: WixClient) -> None:
    """The issue's case over HTTP: Wix's own answer says active with exp an hour ago."""
    iid = emu.instance_ids[0]
    body = {"active": True, "clientId": emu.app_id, "instanceId": iid, "exp": str(int(time.time()) - 3600)}
    emu.respond_with("token_info", status=200, body=body)
    with pytest.raises(InvalidToken) as refused:
        TokenResolver(client).resolve("OauthNG.JWS.expired")
    assert refused.value.reason == "expired"


def test_exp_within_the_leeway_is_accepted_but_not_cached(emu: Emulator, client: WixClient) -> None:
    """Clock skew: an exp 10 s behind our clock (leeway 30 s) is still accepted, used once, not cached."""
    token = emu.mint_token(emu.instance_ids[0], ttl=60)
    clock = Clock(time.time() + 70)
    resolver = TokenResolver(client, clock=clock)
    assert resolver.resolve(token).instance_id == uuid.UUID(emu.instance_ids[0])
    assert resolver.cached == 0
    strict = TokenResolver(client, clock=clock, exp_leeway=0)
    with pytest.raises(InvalidToken):
        strict.resolve(token)


def test_cache_is_bounded_lru(emu: Emulator, client: WixClient) -> None:
    """The cache keeps at most max_entries tokens, evicting the least recently used."""
    resolver = TokenResolver(client, max_entries=3)
    tokens = [emu.mint_token(emu.instance_ids[n % 2]) for n in range(5)]
    for token in tokens:
        resolver.resolve(token)
    assert resolver.cached == 3
    resolver.resolve(tokens[-1])
    assert emu.count("token_info") == 5
    resolver.resolve(tokens[0])
    assert emu.count("token_info") == 6


def test_cache_keys_are_hashes_not_tokens(emu: Emulator, resolver: TokenResolver) -> None:
    """Nothing the resolver keeps contains the token."""
    token = emu.mint_token(emu.instance_ids[0])
    resolver.resolve(token)
    kept = repr(vars(resolver)) + repr(list(resolver._cache))
    assert token not in kept and token.encode() not in b"".join(resolver._cache)
    assert token not in repr(resolver)


def test_invalidate_and_clear(emu: Emulator, resolver: TokenResolver) -> None:
    """invalidate() forgets one token and clear() all of them."""
    a, b = emu.mint_token(emu.instance_ids[0]), emu.mint_token(emu.instance_ids[1])
    resolver.resolve(a)
    resolver.resolve(b)
    resolver.invalidate("Bearer " + a)
    resolver.invalidate("")  # malformed: nothing to forget, no error
    assert resolver.cached == 1
    resolver.resolve(a)
    assert emu.count("token_info") == 3
    resolver.clear()
    assert resolver.cached == 0


def test_concurrent_first_resolutions_make_one_request(emu: Emulator, resolver: TokenResolver) -> None:
    """64 threads resolving one new token at once make exactly one Token Info request."""
    emu.set_latency(0.05)
    token = emu.mint_token(emu.instance_ids[0])
    results = at_once(64, lambda: resolver.resolve(token).instance_id)
    assert results == [uuid.UUID(emu.instance_ids[0])] * 64
    assert emu.count("token_info") == 1


def test_concurrent_refusal_reaches_every_caller(emu: Emulator, resolver: TokenResolver) -> None:
    """When the shared Token Info call refuses the token, every waiting caller gets InvalidToken."""
    emu.set_latency(0.05)
    token = emu.mint_token(emu.instance_ids[0], client_id="other-app")
    outcomes = at_once(16, lambda: resolver.resolve(token))
    assert [getattr(o, "reason", o) for o in outcomes] == ["issued for another app"] * 16
    assert all(isinstance(o, InvalidToken) for o in outcomes)
    assert emu.count("token_info") <= 2  # one flight, or two if a thread arrived after it ended


def test_settings_are_validated(client: WixClient) -> None:
    """A resolver with no room or no lifetime is a programming error."""
    with pytest.raises(ConfigurationError):
        TokenResolver(client, max_entries=0)
    with pytest.raises(ConfigurationError):
        TokenResolver(client, max_ttl=0)
    with pytest.raises(ConfigurationError):
        TokenResolver(client, refusal_ttl=-1)
