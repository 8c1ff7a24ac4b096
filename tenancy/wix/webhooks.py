"""Verified Wix webhooks: the request body (a JWT) to a :class:`WixEvent`.

Wix posts App Instance events (``AppInstalled``, ``AppRemoved``, plan events) as a raw JWT
signed RS256 with the app's public key (from the app dashboard). Three levels of JSON sit
inside: the claims' ``data`` is the envelope (a JSON string, or an object), whose ``data`` is
the event payload and whose ``identity`` says who acted. This module verifies the signature
(PyJWT, RS256 only) and the token's time claims, then unpacks all three; anything else raises
:class:`~tenancy.InvalidWebhook` (answer 400/401 and Wix retries). Apply the event to the
``tenants`` table with :func:`tenancy.tenant_sync.events.apply_event`.
"""

from __future__ import annotations

import base64
import binascii
import math
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tenancy.errors import ConfigurationError, InvalidWebhook
from tenancy.wix import jsonsafe

__all__ = ["MAX_WEBHOOK_BYTES", "MIN_RSA_BITS", "WebhookVerifier", "WixEvent"]

MAX_WEBHOOK_BYTES = 256 * 1024  # Wix events are a few KB; refuse anything absurd unparsed
MIN_RSA_BITS = 2048  # Wix's keys are 2048-bit; PyJWT would only warn about shorter ones
# PyJWT checks the signature (RS256 only); the time claims are checked with our clock, and
# claims Wix does not send (aud, iss, sub, jti) are not judged: Wix's SDK ignores them too.
_JWT_OPTIONS: jwt.types.Options = {
    "verify_signature": True,
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "verify_aud": False,
    "verify_iss": False,
    "verify_sub": False,
    "verify_jti": False,
    "require": [],
}


@dataclass(frozen=True)
class WixEvent:
    """One verified App Instance event."""

    event_type: str
    instance_id: uuid.UUID
    payload: Mapping[str, Any]
    identity: Mapping[str, Any] | None = None
    account_info: Mapping[str, Any] | None = None
    issued_at: float | None = field(default=None, compare=False)


def _finite(value: object) -> bool:
    """A usable NumericDate: a number, not a bool, not NaN or infinite (JSON parsers allow those)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def _json_object(value: Any, what: str) -> dict[str, Any]:
    problem = f"{what} is not JSON"
    try:
        if isinstance(value, str):
            value = jsonsafe.loads(value)
        else:
            jsonsafe.check(value)  # an object PyJWT already parsed
    except jsonsafe.UnsafeJSON as exc:
        problem = f"{what}: {exc}"
    except ValueError:
        pass
    else:
        if not isinstance(value, dict):
            raise InvalidWebhook(f"{what} is not a JSON object")
        return value
    raise InvalidWebhook(problem)  # outside the except blocks: the decode error holds the body


def _load_public_key(public_key: str) -> rsa.RSAPublicKey:
    # An unusable key is the app's configuration (WIX_WEBHOOK_PUBLIC_KEY), as a missing one is,
    # not a bad body: ConfigurationError, raised when the verifier (the web app) is built.
    text = public_key.strip()
    if "\n" not in text and "-----BEGIN" not in text:
        # The dashboard also hands out the PEM base64-encoded (as the JS SDK accepts it).
        try:
            text = base64.b64decode(text, validate=True).decode("ascii")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise ConfigurationError("the webhook public key is neither PEM nor base64 of a PEM") from None
    try:
        key = serialization.load_pem_public_key(text.encode("ascii"))
    except ValueError:
        raise ConfigurationError("the webhook public key is not a PEM public key") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise ConfigurationError("the webhook public key is not an RSA key (Wix signs RS256)")
    if key.key_size < MIN_RSA_BITS:
        raise ConfigurationError(f"the webhook public key has {key.key_size} bits; at least {MIN_RSA_BITS}")
    return key


class WebhookVerifier:
    """Verifies and unpacks Wix webhook bodies with the app's public key.

    *public_key* is the PEM from the app dashboard, or its base64 form (RSA, at least
    2048 bits). Signatures are checked by PyJWT with the algorithm pinned to RS256 (the
    token's own header never chooses it). ``leeway`` seconds are allowed on ``exp``/``nbf``;
    ``clock`` returns Unix seconds (tests pin it), which is why the time claims are checked
    here rather than by PyJWT (it reads the system clock).
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
        if not isinstance(body, str):
            raise InvalidWebhook("webhook body is not a JWT")
        token = body.strip()
        if len(token) > MAX_WEBHOOK_BYTES:
            raise InvalidWebhook("webhook body is too large")
        if not token.isascii() or token.count(".") != 2:
            raise InvalidWebhook("webhook body is not a JWT")
        claims = self._verified_claims(token)
        self._check_times(claims)
        return self._event(claims)

    def _verified_claims(self, token: str) -> dict[str, Any]:
        problem: str
        try:
            claims: dict[str, Any] = jwt.decode(token, self._key, algorithms=["RS256"], options=_JWT_OPTIONS)
        except jwt.InvalidAlgorithmError:
            # Never let the token choose its algorithm ("none", HS256 with the public key...).
            problem = "webhook JWT is not signed RS256"
        except jwt.InvalidSignatureError:
            problem = "webhook signature does not verify with the app's public key"
        except jwt.DecodeError:
            problem = "webhook body is not a JWT"
        except jwt.PyJWTError as exc:  # e.g. a malformed "kid" or "crit" header
            problem = f"webhook JWT is invalid ({type(exc).__name__})"
        except RecursionError:
            # PyJWT's json.loads of a header (parsed before the signature is checked) or of
            # the claims, nested past the interpreter's limit.
            problem = f"webhook JWT is JSON nested deeper than {jsonsafe.MAX_DEPTH} levels"
        else:
            try:
                jsonsafe.check(claims)
            except jsonsafe.UnsafeJSON as exc:
                problem = f"webhook claims: {exc}"
            else:
                return claims
        # Raised outside the except blocks: PyJWT's exceptions are not chained onto ours.
        raise InvalidWebhook(problem)

    def _check_times(self, claims: Mapping[str, Any]) -> None:
        now = self._clock()
        exp, nbf = claims.get("exp"), claims.get("nbf")
        if exp is not None and (not _finite(exp) or now > exp + self._leeway):
            raise InvalidWebhook("webhook JWT has expired")
        if nbf is not None and (not _finite(nbf) or now < nbf - self._leeway):
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
            issued_at=float(iat) if isinstance(iat, int | float) and _finite(iat) else None,
        )
