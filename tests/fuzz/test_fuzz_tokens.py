"""Fuzzing request tokens, Authorization headers and instance ids (Hypothesis).

Properties: only ``tenancy`` errors come out; a session is returned only for a token Wix
vouches for (and then for its instance), never a connection is checked out on bad input;
the token (a secret) is in no message, repr or log line; parsed values have their types.
"""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

import tenancy
from tenancy.instance_ids import parse_instance_id
from tenancy.wix.resolver import TokenResolver
from tests.fuzz.conftest import MARK
from tests.fuzz.strategies import all_fields_conform, canonical, hostile_text, no_secret

pytestmark = pytest.mark.postgres

# Prefixes a header may carry before the credential, right or wrong.
prefixes = st.sampled_from(
    ["", "Bearer ", "bearer ", "BEARER ", "Bearer  ", "Bearer", "Basic ", " Bearer ", "\tBearer "]
)
planted_tokens = st.builds(
    lambda prefix, a, b: f"{prefix}{a}{MARK}{b}",
    prefixes,
    st.text(max_size=20),
    st.text(max_size=20),
)
any_tokens = st.one_of(
    planted_tokens,
    st.builds(lambda prefix, body: prefix + body, prefixes, hostile_text),
    st.builds(lambda n: "Bearer " + "A" * n + MARK, st.integers(4000, 20_000)),
    st.binary(max_size=64),
    st.none(),
    st.integers(),
    st.floats(),
    st.lists(st.text(max_size=5), max_size=3),
)


@pytest.fixture(scope="module")
def factory(engines, client):
    runtime, admin, _checkouts = engines
    return tenancy.TenantSessionFactory(runtime, admin_engine=admin, resolver=TokenResolver(client))


@given(token=any_tokens)
def test_bad_tokens_and_headers_raise_tenancy_errors_and_open_nothing(factory, engines, logs, token) -> None:
    """Random tokens and headers (text, bytes, numbers, None, huge): InvalidToken or a WixError,
    no session, no connection checked out, the token in no message or log line."""
    checkouts = engines[2]
    before = checkouts.count
    with pytest.raises(tenancy.TenancyError) as raised:
        factory.for_token(token)
    assert isinstance(raised.value, tenancy.InvalidToken | tenancy.WixError)
    assert checkouts.count == before
    assert no_secret(str(raised.value), repr(raised.value), logs.take())


header_prefixes = st.one_of(
    prefixes,
    st.builds(
        lambda word, spaces: word + spaces,
        st.sampled_from(["bearer", "Bearer"]).flatmap(
            lambda word: st.tuples(*(st.sampled_from([c.lower(), c.upper()]) for c in word)).map("".join)
        ),
        st.text(alphabet=" \t", max_size=3),
    ),
    st.text(max_size=8),
)


@given(
    prefix=header_prefixes,
    instance=st.integers(0, 2),
    padding=st.one_of(st.just(""), st.text(alphabet=" \t\r\n\x00", max_size=2)),
)
def test_real_tokens_with_any_header_shape_open_only_their_instance(
    factory, emu, logs, prefix, instance, padding
) -> None:
    """A token Wix issued, under every Authorization shape: its own instance's session or a refusal."""
    iid = emu.instance_ids[instance]
    token = emu.mint_token(iid)
    header = f"{prefix}{token}{padding}"
    try:
        session = factory.for_token(header)
    except tenancy.TenancyError as exc:
        assert isinstance(exc, tenancy.InvalidToken)
        assert token not in str(exc) + repr(exc)
    else:
        with session:
            assert session.info["tenancy.instance_id"] == uuid.UUID(iid)
        # Accepted forms: the bare token, or "Bearer" in any case, a space, then any spaces.
        assert prefix == "" or (prefix[:7].lower() == "bearer " and prefix[7:].strip(" ") == "")
        assert padding == ""
    info = factory.resolver.resolve(token)
    assert all_fields_conform(info) and info.instance_id == uuid.UUID(iid)
    assert token not in logs.take()


instance_ids = st.one_of(
    st.uuids(),
    st.uuids().map(str),
    st.uuids().map(lambda u: str(u).upper()),
    st.uuids().map(lambda u: "{" + u.hex + "}"),
    st.uuids().map(lambda u: f"urn:uuid:{u}"),
    st.uuids().map(lambda u: f" {u} "),
    st.uuids().map(lambda u: u.bytes),
    st.uuids().map(lambda u: str(u).encode()),
    st.uuids().map(lambda u: u.int),
    hostile_text,
    st.binary(max_size=40),
    st.integers(),
    st.floats(),
    st.none(),
    st.builds(lambda n: "0" * n, st.integers(30, 100_000)),
)


@given(value=instance_ids)
def test_instance_ids_parse_to_uuids_or_raise_invalid_instance_id(value) -> None:
    """Strings, bytes, numbers, None: a uuid.UUID exactly when the contract says, else InvalidInstanceId."""
    expected = canonical(value)
    if expected is None:
        with pytest.raises(tenancy.InvalidInstanceId) as raised:
            parse_instance_id(value)
        assert MARK not in str(raised.value)
    else:
        parsed = parse_instance_id(value)
        assert type(parsed) is uuid.UUID and parsed == expected


@given(value=instance_ids)
def test_for_instance_refuses_before_any_connection(factory, engines, value) -> None:
    """for_instance: a session bound to the canonical UUID, or InvalidInstanceId with nothing opened."""
    checkouts = engines[2]
    before = checkouts.count
    expected = canonical(value)
    if expected is None:
        with pytest.raises(tenancy.InvalidInstanceId):
            factory.for_instance(value)
        assert checkouts.count == before
    else:
        with factory.for_instance(value) as session:
            assert session.info["tenancy.instance_id"] == expected


@given(value=instance_ids)
def test_the_wix_client_sends_nothing_for_a_bad_instance_id(client, emu, value) -> None:
    """app_access_token / get_app_instance refuse a bad id before any request reaches Wix."""
    if canonical(value) is not None:
        return
    sent = sum(emu.counts.get(name, 0) for name in ("access_token", "get_app_instance"))
    for call in (client.app_access_token, client.get_app_instance, client.forget_app_token):
        with pytest.raises(tenancy.InvalidInstanceId):
            call(value)
    assert sum(emu.counts.get(name, 0) for name in ("access_token", "get_app_instance")) == sent
