"""Verified Wix webhooks: signature, time claims and three levels of JSON; applied to tenants."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from sqlalchemy import create_engine, func, select

import tenancy
from tenancy.tenants.model import Tenant
from tenancy.testing.postgres import Database
from tests.conftest import migrate

FIXTURES = Path(__file__).parents[1] / "fixtures" / "wix"
PUBLIC_KEY = (FIXTURES / "webhook-public-key.pem").read_text()
SAMPLES = {
    "AppInstalled": "webhook-app-installed.json",
    "AppRemoved": "webhook-app-removed.json",
    "PaidPlanPurchased": "webhook-paid-plan-purchased.json",
    "PaidPlanChanged": "webhook-paid-plan-changed.json",
    "PaidPlanAutoRenewalCancelled": "webhook-paid-plan-auto-renewal-cancelled.json",
    "PlanConvertedToPaid": "webhook-plan-converted-to-paid.json",
}
SAMPLE_IAT = 1795600000  # the samples' iat; exp = iat + 300000: tests pin the clock


def _sample(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def _verifier(now: float = SAMPLE_IAT + 10, key: str = PUBLIC_KEY) -> tenancy.WebhookVerifier:
    return tenancy.WebhookVerifier(key, clock=lambda: now)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _sign(claims: dict, key: rsa.RSAPrivateKey, header: dict | None = None) -> str:
    head = _b64(json.dumps(header or {"alg": "RS256"}).encode())
    body = _b64(json.dumps(claims).encode())
    sig = key.sign(f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{head}.{body}.{_b64(sig)}"


@pytest.fixture(scope="module")
def own_key() -> tuple[rsa.RSAPrivateKey, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return key, pem


@pytest.mark.parametrize(("event_type", "name"), SAMPLES.items())
def test_every_sample_verifies_and_unpacks(event_type: str, name: str) -> None:
    """Each signed sample body yields its event type, instance id and the SDK's payload."""
    sample = _sample(name)
    event = _verifier().parse(sample["rawBody"])
    assert event.event_type == event_type
    assert event.instance_id == uuid.UUID("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee")
    assert dict(event.payload) == sample["eventDataParsed"]
    assert event.identity == sample["identityParsed"]


def test_bytes_body_and_base64_public_key_are_accepted() -> None:
    """The raw body may arrive as bytes; the key may be the base64 of its PEM (as the SDK allows)."""
    body = _sample(SAMPLES["AppRemoved"])["rawBody"].encode()
    key = base64.b64encode(PUBLIC_KEY.encode()).decode()
    assert _verifier(key=key).parse(body).event_type == "AppRemoved"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda body: body[:-4] + ("AAAA" if not body.endswith("AAAA") else "BBBB"), "signature"),
        (
            lambda body: body.replace(".", ".e30.", 1).split(".e30.")[0] + ".e30." + body.split(".")[2],
            "signature",
        ),
        (lambda body: "not-a-jwt", "not a JWT"),
        (lambda body: "a.b", "not a JWT"),
        (lambda body: "x" * 300_000, "too large"),
    ],
    ids=["tampered-signature", "swapped-claims", "garbage", "two-parts", "oversized"],
)
def test_tampered_or_malformed_bodies_are_refused(mutate, message: str) -> None:
    """A body whose signature fails or that is no JWT raises InvalidWebhook naming why."""
    body = _sample(SAMPLES["AppInstalled"])["rawBody"]
    with pytest.raises(tenancy.InvalidWebhook, match=message):
        _verifier().parse(mutate(body))


def test_expired_and_not_yet_valid_tokens_are_refused() -> None:
    """exp and nbf are enforced (with leeway), so a captured body cannot be replayed forever."""
    body = _sample(SAMPLES["AppInstalled"])["rawBody"]
    with pytest.raises(tenancy.InvalidWebhook, match="expired"):
        _verifier(now=SAMPLE_IAT + 300000 + 61).parse(body)
    assert _verifier(now=SAMPLE_IAT + 300000 + 59).parse(body).event_type == "AppInstalled"


def test_another_key_or_algorithm_is_refused(own_key) -> None:
    """A body signed with another key, or claiming alg none/HS256, never verifies."""
    key, _pem = own_key
    claims = {"data": json.dumps({"eventType": "AppRemoved", "instanceId": str(uuid.uuid4()), "data": "{}"})}
    with pytest.raises(tenancy.InvalidWebhook, match="signature"):
        _verifier().parse(_sign(claims, key))
    forged = _sign(claims, key, header={"alg": "none"})
    with pytest.raises(tenancy.InvalidWebhook, match="RS256"):
        _verifier().parse(forged)
    with pytest.raises(tenancy.InvalidWebhook, match="RS256"):
        _verifier().parse(_sign(claims, key, header={"alg": "HS256"}))


def test_envelope_as_object_and_missing_fields(own_key) -> None:
    """claims.data may be an object; a missing instanceId or eventType is refused."""
    key, pem = own_key
    iid = uuid.uuid4()
    verifier = tenancy.WebhookVerifier(pem)
    event = verifier.parse(_sign({"data": {"eventType": "AppInstalled", "instanceId": str(iid)}}, key))
    assert (event.event_type, event.instance_id, dict(event.payload)) == ("AppInstalled", iid, {})
    with pytest.raises(tenancy.InvalidWebhook, match="instanceId"):
        verifier.parse(_sign({"data": {"eventType": "AppInstalled", "instanceId": "1 OR 1=1"}}, key))
    with pytest.raises(tenancy.InvalidWebhook, match="eventType"):
        verifier.parse(_sign({"data": {"instanceId": str(iid)}}, key))


def _sign_raw(claims_json: bytes, key: rsa.RSAPrivateKey, header_json: bytes = b'{"alg": "RS256"}') -> str:
    signing_input = f"{_b64(header_json)}.{_b64(claims_json)}"
    sig = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64(sig)}"


DEEP = 40_000  # far past the interpreter's recursion limit, within MAX_WEBHOOK_BYTES


@pytest.mark.parametrize(
    ("where", "claims", "header"),
    [
        ("header", b'{"data": {}}', b'{"alg": "RS256", "x": ' + b"[" * DEEP + b"]" * DEEP + b"}"),
        ("claims", b'{"data": ' + b"[" * DEEP + b"]" * DEEP + b"}", b'{"alg": "RS256"}'),
        ("claims", b'{"data": ' + b'{"a":' * DEEP + b"1" + b"}" * DEEP + b"}", b'{"alg": "RS256"}'),
        ("claims", b'{"data": ' + b"[" * 200 + b"]" * 200 + b"}", b'{"alg": "RS256"}'),
        ("envelope", json.dumps({"data": "[" * DEEP + "]" * DEEP}).encode(), b'{"alg": "RS256"}'),
        (
            "payload",
            json.dumps(
                {"data": json.dumps({"eventType": "AppRemoved", "instanceId": str(uuid.uuid4()),
                                     "data": "[" * DEEP + "]" * DEEP})}
            ).encode(),
            b'{"alg": "RS256"}',
        ),
    ],
)  # fmt: skip
def test_json_nested_too_deep_anywhere_is_an_invalid_webhook(own_key, where, claims, header) -> None:
    """Nesting past the recursion limit in the (unsigned!) header, the claims, the envelope or the
    payload is InvalidWebhook, never RecursionError."""
    key, pem = own_key
    with pytest.raises(tenancy.InvalidWebhook):
        tenancy.WebhookVerifier(pem).parse(_sign_raw(claims, key, header))


def test_a_lone_surrogate_in_the_envelope_is_an_invalid_webhook(own_key) -> None:
    """``"\\ud800"`` in a signed event's strings is not text: refused, nothing applied."""
    key, pem = own_key
    for data in (
        {"eventType": "AppRemoved\ud800", "instanceId": str(uuid.uuid4())},
        json.dumps({"eventType": "AppRemoved", "instanceId": str(uuid.uuid4()), "data": {"x": "\udfff"}}),
    ):
        with pytest.raises(tenancy.InvalidWebhook, match="surrogate"):
            tenancy.WebhookVerifier(pem).parse(_sign({"data": data}, key))


def test_a_bad_public_key_is_a_clear_error() -> None:
    """A key that is not an RSA public key PEM (or its base64) is the app's configuration, like a
    missing one: ConfigurationError at construction, not InvalidWebhook (which blames a body)."""
    with pytest.raises(tenancy.ConfigurationError, match="public key"):
        tenancy.WebhookVerifier("not a key")


@pytest.mark.postgres
def test_events_update_tenants_immediately(empty_pg_database: Database) -> None:
    """Installed registers and makes due; plan events make due; removed marks removed and keeps data."""
    engine = create_engine(empty_pg_database.admin_url)
    migrate(engine)
    verifier = _verifier()
    iid = uuid.UUID("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee")

    def row() -> Tenant:
        with engine.connect() as conn:
            return conn.execute(select(Tenant.__table__).where(Tenant.instance_id == iid)).one()

    installed = verifier.parse(_sample(SAMPLES["AppInstalled"])["rawBody"])
    assert tenancy.apply_event(engine, installed) == "refresh"
    assert tenancy.apply_event(engine, installed) == "refresh"  # duplicates are harmless
    assert (row().status, row().last_synced_at) == ("active", None)
    with engine.begin() as conn:
        conn.execute(Tenant.__table__.update().values(site_display_name="Shop", last_synced_at=func.now()))
    removed = verifier.parse(_sample(SAMPLES["AppRemoved"])["rawBody"])
    assert tenancy.apply_event(engine, removed) == "removed"
    assert (row().status, row().site_display_name) == ("removed", "Shop")
    plan = verifier.parse(_sample(SAMPLES["PaidPlanChanged"])["rawBody"])
    assert tenancy.apply_event(engine, plan) == "refresh"
    assert (row().status, row().last_synced_at, row().site_display_name) == ("active", None, "Shop")
    unknown = tenancy.WixEvent(event_type="SomethingNew", instance_id=iid, payload={})
    assert tenancy.apply_event(engine, unknown) == "ignored"
    engine.dispose()


@pytest.mark.postgres
def test_events_apply_in_the_order_of_their_own_time(empty_pg_database: Database, own_key) -> None:
    """An event issued before the last one applied (delivered late) is ignored ("stale"); a
    duplicate applies again harmlessly; the row never goes back to an older state."""
    key, pem = own_key
    engine = create_engine(empty_pg_database.admin_url)
    migrate(engine)
    iid = uuid.uuid4()
    verifier = tenancy.WebhookVerifier(pem, clock=lambda: SAMPLE_IAT + 100)

    def event(event_type: str, iat: int) -> tenancy.WixEvent:
        envelope = {"eventType": event_type, "instanceId": str(iid), "data": "{}"}
        return verifier.parse(_sign({"data": json.dumps(envelope), "iat": iat, "exp": iat + 300}, key))

    def status() -> tuple[str, object]:
        with engine.connect() as conn:
            row = conn.execute(select(Tenant.status, Tenant.last_event_at).where(Tenant.instance_id == iid))
            state, last = row.one()
            return state, last

    removed_late = event("AppRemoved", SAMPLE_IAT + 50)
    assert tenancy.apply_event(engine, removed_late) == "removed"
    # The install that came before the removal, delivered after it.
    assert tenancy.apply_event(engine, event("AppInstalled", SAMPLE_IAT + 10)) == "stale"
    assert tenancy.apply_event(engine, event("PaidPlanChanged", SAMPLE_IAT + 49)) == "stale"
    assert status()[0] == "removed"
    assert tenancy.apply_event(engine, removed_late) == "removed"  # a duplicate: harmless
    assert tenancy.apply_event(engine, event("AppInstalled", SAMPLE_IAT + 60)) == "refresh"
    assert tenancy.apply_event(engine, event("AppRemoved", SAMPLE_IAT + 55)) == "stale"
    state, last = status()
    assert state == "active" and last.timestamp() == SAMPLE_IAT + 60  # type: ignore[attr-defined]
    # No iat: arrival order, and the recorded time stays.
    no_time = tenancy.WixEvent(event_type="AppRemoved", instance_id=iid, payload={})
    assert tenancy.apply_event(engine, no_time) == "removed"
    assert status()[1].timestamp() == SAMPLE_IAT + 60  # type: ignore[union-attr]
    engine.dispose()
