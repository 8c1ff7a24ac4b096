"""Verified Wix webhooks: the request body (a JWT) to a :class:`WixEvent`.

Wix posts App Instance events (``AppInstalled``, ``AppRemoved``, plan events) as a raw JWT
signed RS256 with the app's public key (from the app dashboard). Three levels of JSON sit
inside: the claims' ``data`` is the envelope (a JSON string, or an object), whose ``data`` is
the event payload and whose ``identity`` says who acted. This module verifies the signature
and the token's time claims, then unpacks all three; anything else raises
:class:`~tenancy.InvalidWebhook` (answer 400/401 and Wix retries). Apply the event to the
``tenants`` table with :func:`tenancy.tenant_sync.events.apply_event`.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tenancy.errors import InvalidWebhook

__all__ = ["MAX_WEBHOOK_BYTES", "WebhookVerifier", "WixEvent"]

MAX_WEBHOOK_BYTES = 256 * 1024  # Wix events are a few KB; refuse anything absurd unparsed


@dataclass(frozen=True)
class WixEvent:
    """One verified App Instance event."""

    event_type: str
    instance_id: uuid.UUID
    payload: Mapping[str, Any]
    identity: Mapping[str, Any] | None = None
    account_info: Mapping[str, Any] | None = None
    issued_at: float | None = field(default=None, compare=False)


def _b64url(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _json_object(value: Any, what: str) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise InvalidWebhook(f"{what} is not JSON") from None
    if not isinstance(value, dict):
        raise InvalidWebhook(f"{what} is not a JSON object")
    return value


def _load_public_key(public_key: str) -> rsa.RSAPublicKey:
    text = public_key.strip()
    if "\n" not in text and "-----BEGIN" not in text:
        # The dashboard also hands out the PEM base64-encoded (as the JS SDK accepts it).
        try:
            text = base64.b64decode(text, validate=True).decode("ascii")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise InvalidWebhook("the webhook public key is neither PEM nor base64 of a PEM") from None
    try:
        key = serialization.load_pem_public_key(text.encode("ascii"))
    except ValueError:
        raise InvalidWebhook("the webhook public key is not a PEM public key") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise InvalidWebhook("the webhook public key is not an RSA key (Wix signs RS256)")
    return key


class WebhookVerifier:
    """Verifies and unpacks Wix webhook bodies with the app's public key.

    *public_key* is the PEM from the app dashboard, or its base64 form. ``leeway`` seconds
    are allowed on ``exp``/``nbf``; ``clock`` returns Unix seconds (tests pin it).
    """

    def __init__(
        self, public_key: str, *, leeway: float = 60.0, clock: Callable[[], float] = time.time
    ) -> None:
        self._key = _load_public_key(public_key)
        self._leeway = leeway
        self._clock = clock

    def __repr__(self) -> str:
        return f"WebhookVerifier(rsa_bits={self._key.key_size}, leeway={self._leeway})"

    def parse(self, body: str | bytes) -> WixEvent:
        """Verify *body* (the raw request body) and return its event, or raise InvalidWebhook."""
        if isinstance(body, bytes):
            if len(body) > MAX_WEBHOOK_BYTES:
                raise InvalidWebhook("webhook body is too large")
            try:
                body = body.decode("ascii")
            except UnicodeDecodeError:
                raise InvalidWebhook("webhook body is not a JWT") from None
        token = body.strip()
        if len(token) > MAX_WEBHOOK_BYTES:
            raise InvalidWebhook("webhook body is too large")
        parts = token.split(".")
        if len(parts) != 3:
            raise InvalidWebhook("webhook body is not a JWT")
        try:
            header = _json_object(_b64url(parts[0]).decode("utf-8"), "JWT header")
            signature = _b64url(parts[2])
            claims = _json_object(_b64url(parts[1]).decode("utf-8"), "JWT claims")
        except (binascii.Error, ValueError):
            raise InvalidWebhook("webhook body is not a JWT") from None
        if header.get("alg") != "RS256":
            # Never let the token choose its algorithm ("none", HS256 with the public key...).
            raise InvalidWebhook("webhook JWT is not signed RS256")
        try:
            self._key.verify(
                signature, f"{parts[0]}.{parts[1]}".encode("ascii"), padding.PKCS1v15(), hashes.SHA256()
            )
        except InvalidSignature:
            raise InvalidWebhook("webhook signature does not verify with the app's public key") from None
        self._check_times(claims)
        return self._event(claims)

    def _check_times(self, claims: Mapping[str, Any]) -> None:
        now = self._clock()
        exp, nbf = claims.get("exp"), claims.get("nbf")
        if exp is not None and (not isinstance(exp, int | float) or now > exp + self._leeway):
            raise InvalidWebhook("webhook JWT has expired")
        if nbf is not None and (not isinstance(nbf, int | float) or now < nbf - self._leeway):
            raise InvalidWebhook("webhook JWT is not valid yet")

    @staticmethod
    def _event(claims: Mapping[str, Any]) -> WixEvent:
        envelope = _json_object(claims.get("data"), "webhook envelope (claims.data)")
        event_type = envelope.get("eventType")
        if not isinstance(event_type, str) or not event_type:
            raise InvalidWebhook("webhook envelope has no eventType")
        raw_id = envelope.get("instanceId")
        try:
            instance_id = uuid.UUID(str(raw_id))
        except ValueError:
            raise InvalidWebhook("webhook envelope has no valid instanceId") from None
        payload = _json_object(envelope.get("data") or "{}", "webhook event data")
        identity = envelope.get("identity")
        account = envelope.get("accountInfo")
        iat = claims.get("iat")
        return WixEvent(
            event_type=event_type,
            instance_id=instance_id,
            payload=payload,
            identity=_json_object(identity, "webhook identity") if identity else None,
            account_info=account if isinstance(account, dict) else None,
            issued_at=float(iat) if isinstance(iat, int | float) else None,
        )
