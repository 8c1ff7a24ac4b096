"""Fuzzing webhook bodies (Hypothesis): signed envelopes of every shape, mutated JWTs, random
bytes, huge inputs. Only InvalidWebhook comes out, a verified event has its declared types,
and no planted secret is echoed."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import given
from hypothesis import strategies as st

import tenancy
from tenancy.wix.webhooks import MAX_WEBHOOK_BYTES, WebhookVerifier
from tests.fuzz.strategies import (
    all_fields_conform,
    deep_depths,
    deep_json,
    hostile_text,
    json_values,
    no_secret,
    surrogate_text,
)
from tests.fuzz.strategies import numeric_dates as any_numeric_dates

NOW = 1_795_600_000


@pytest.fixture(scope="module")
def keys() -> tuple[Any, WebhookVerifier]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, WebhookVerifier(pem.decode(), clock=lambda: NOW)


def _maybe_json(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A value, or the same value as a JSON string (Wix nests JSON in strings)."""
    return st.one_of(value, value.map(lambda v: json.dumps(v)))


envelopes = st.fixed_dictionaries(
    {},
    optional={
        "eventType": st.one_of(
            st.sampled_from(["AppInstalled", "AppRemoved", "PaidPlanChanged"]), json_values
        ),
        "instanceId": st.one_of(st.uuids().map(str), json_values),
        "data": _maybe_json(json_values),
        "identity": _maybe_json(json_values),
        "accountInfo": json_values,
        **{key: json_values for key in ("extra", "")},
    },
)
numeric_dates = st.one_of(
    st.integers(NOW - 1000, NOW + 1000),
    st.floats(),
    st.integers(),
    hostile_text,
    st.none(),
    st.booleans(),
    any_numeric_dates,
)
claims = st.fixed_dictionaries(
    {"data": st.one_of(_maybe_json(envelopes), json_values)},
    optional={"iat": numeric_dates, "exp": numeric_dates, "nbf": numeric_dates, "sub": json_values},
)


def _check(verifier: WebhookVerifier, body: str | bytes) -> tenancy.WixEvent | None:
    try:
        event = verifier.parse(body)
    except tenancy.InvalidWebhook as exc:
        assert no_secret(str(exc), repr(exc))
        return None
    assert all_fields_conform(event)
    return event


@given(payload=claims)
def test_signed_envelopes_of_every_shape(keys, payload) -> None:
    """A correctly signed JWT whose claims hold anything: an event of its declared types or InvalidWebhook."""
    private, verifier = keys
    token = jwt.encode(payload, private, algorithm="RS256")
    event = _check(verifier, token)
    if event is not None:
        envelope = payload["data"]
        envelope = json.loads(envelope) if isinstance(envelope, str) else envelope
        assert event.instance_id == uuid.UUID(str(envelope["instanceId"]))
        assert event.event_type == envelope["eventType"]


@given(
    payload=claims,
    position=st.floats(0, 1),
    replacement=st.text(alphabet="ABCxyz019-_.=+/ ", min_size=0, max_size=3),
    cut=st.integers(0, 3),
)
def test_mutated_jwts_verify_to_the_same_event_or_are_refused(
    keys, payload, position, replacement, cut
) -> None:
    """Any edit of a signed body: the original event (an edit in base64 padding bits) or InvalidWebhook."""
    private, verifier = keys
    token = jwt.encode(payload, private, algorithm="RS256")
    original = _check(verifier, token)
    at = int(position * len(token))
    mutated = token[:at] + replacement + token[at + cut :]
    event = _check(verifier, mutated)
    if event is not None and mutated != token:
        assert event == original


def _raw_jwt(header: Any, payload: Any, private: Any) -> str:
    """A JWT built by hand (any header, even one PyJWT would refuse to write), signed RS256."""

    def part(value: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    signing_input = f"{part(header)}.{part(payload)}"
    signature = private.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()


@given(
    header=st.one_of(
        st.dictionaries(st.sampled_from(["alg", "kid", "typ", "crit", "b64", "jku"]), json_values),
        st.fixed_dictionaries({"alg": st.just("RS256")}, optional={"kid": json_values, "crit": json_values}),
        json_values,
    )
)
def test_any_header_only_rs256_with_the_apps_key_verifies(keys, header) -> None:
    """Headers of every shape (alg none/HS256/random, odd kid and crit, not even an object):
    never an event unless the header says RS256."""
    private, verifier = keys
    body = {"data": {"eventType": "AppInstalled", "instanceId": str(uuid.uuid4())}}
    event = _check(verifier, _raw_jwt(header, body, private))
    if event is not None:
        assert isinstance(header, dict) and header.get("alg") == "RS256"


@given(body=st.one_of(st.binary(max_size=2000), st.text(max_size=2000), hostile_text))
def test_random_bytes_and_text_are_refused(keys, body) -> None:
    """Random bytes or text are never an event."""
    assert _check(keys[1], body) is None


@given(size=st.integers(MAX_WEBHOOK_BYTES - 10, 3 * MAX_WEBHOOK_BYTES), as_bytes=st.booleans())
def test_huge_bodies_are_refused_unparsed(keys, size, as_bytes) -> None:
    """Bodies past the 256 KB cap are refused whatever they hold (here: JWT-looking dots and base64)."""
    text = ("eyJhbGciOiJSUzI1NiJ9." * (size // 21 + 1))[:size]
    with pytest.raises(tenancy.InvalidWebhook):
        keys[1].parse(text.encode() if as_bytes else text)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _sign_raw(private: Any, header: bytes, claims: bytes) -> str:
    signing_input = f"{_b64(header)}.{_b64(claims)}"
    signature = private.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64(signature)}"


@given(
    depth=deep_depths,
    kind=st.sampled_from(["[", "{"]),
    where=st.sampled_from(["header", "claims", "envelope", "payload"]),
    text=surrogate_text,
)
def test_signed_json_too_deep_or_not_text_is_refused(keys, depth, kind, where, text) -> None:
    """Signed (or, for the header, unsigned) JSON nested deeper than tenancy's bound or the
    interpreter's recursion limit, or holding a lone surrogate: InvalidWebhook, nothing else."""
    private, verifier = keys
    deep = deep_json(depth, kind)
    iid = str(uuid.uuid4())
    header, claims = (
        b'{"alg": "RS256"}',
        b'{"data": {"eventType": "AppRemoved", "instanceId": "%s"}}' % iid.encode(),
    )
    if where == "header":
        header = b'{"alg": "RS256", "x": ' + deep + b"}"
    elif where == "claims":
        claims = b'{"data": ' + deep + b', "iat": %d}' % NOW
    elif where == "envelope":
        claims = json.dumps({"data": deep.decode()}).encode()
    else:
        envelope = {"eventType": "AppRemoved", "instanceId": iid, "data": deep.decode()}
        claims = json.dumps({"data": json.dumps(envelope)}).encode()
    result = _check(verifier, _sign_raw(private, header, claims))  # past the size bound: refused too
    # Only the header (unsigned, read for "alg" alone) may nest deeper than tenancy's bound, as long
    # as the interpreter can parse it; everything the event is built from is bounded.
    assert result is None or depth <= 64 or where == "header"
    envelope = {"eventType": text, "instanceId": iid, "data": json.dumps({"x": text})}
    assert (
        _check(verifier, _sign_raw(private, b'{"alg": "RS256"}', json.dumps({"data": envelope}).encode()))
        is None
    )
