"""The emulator's webhooks: Wix's signed App Instance events, delivered to an app over HTTP.

Wix posts each event as a raw JWT (RS256) whose ``data`` claim is a JSON *string* holding
the envelope (``data`` — the payload, itself a JSON string —, ``instanceId``, ``eventType``,
``identity`` — a JSON string — and ``accountInfo``), exactly as in API.md §6 and the
``webhook-*.json`` samples. :class:`WebhookSender` holds the signing key (generated, or
loaded from a PEM), builds those bodies and POSTs them with a short timeout; a failed
delivery is logged and reported, never raised.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

__all__ = ["WEBHOOK_TTL", "WebhookDelivery", "WebhookSender", "load_private_key"]

log = logging.getLogger("tenancy.emulator")

WEBHOOK_TTL = 300_000  # seconds between iat and exp, as in Wix's documented sample
MIN_RSA_BITS = 2048


@dataclass(frozen=True)
class WebhookDelivery:
    """One webhook the emulator sent: what, where, and how the app answered.

    ``status`` is the app's HTTP status (``None`` when no answer came: ``error`` says why).
    """

    event_type: str
    instance_id: str
    url: str
    body: str
    status: int | None
    error: str | None = None
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        """The app answered 2xx."""
        return self.status is not None and 200 <= self.status < 300

    def summary(self) -> dict[str, Any]:
        """The outcome as JSON for the control API (no body)."""
        return {
            "event_type": self.event_type,
            "instance_id": self.instance_id,
            "url": self.url,
            "status": self.status,
            "error": self.error,
        }


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def load_private_key(pem: bytes) -> rsa.RSAPrivateKey:
    """An RSA private key (at least 2048 bits) from PEM bytes; ``ValueError`` naming the problem."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("not an RSA key (Wix signs webhooks RS256)")
    if key.key_size < MIN_RSA_BITS:
        raise ValueError(f"the key has {key.key_size} bits; at least {MIN_RSA_BITS}")
    return key


class WebhookSender:
    """Signs Wix webhook bodies with one RSA key and POSTs them to ``url``.

    ``private_key`` is a PEM (bytes or str); without it a 2048-bit key is generated. The
    app verifies with :attr:`public_key_pem` (or :attr:`public_key_b64`, the one-line form
    ``WIX_WEBHOOK_PUBLIC_KEY`` also accepts). ``timeout`` bounds each delivery, in seconds.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        private_key: bytes | str | None = None,
        timeout: float = 5.0,
    ) -> None:
        if private_key is None:
            self._key = rsa.generate_private_key(public_exponent=65537, key_size=MIN_RSA_BITS)
        else:
            raw = private_key.encode("ascii") if isinstance(private_key, str) else private_key
            self._key = load_private_key(raw)
        self.url = url
        self.timeout = timeout
        public_der = self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.key_id = hashlib.sha256(public_der).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"WebhookSender(url={self.url!r}, key_id={self.key_id!r})"

    @property
    def public_key_pem(self) -> str:
        """The public half as PEM (what the Wix dashboard shows as the app's public key)."""
        return (
            self._key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode("ascii")
        )

    @property
    def public_key_b64(self) -> str:
        """The PEM, base64-encoded on one line: shell-safe for ``export WIX_WEBHOOK_PUBLIC_KEY=``."""
        return base64.b64encode(self.public_key_pem.encode("ascii")).decode("ascii")

    def sign(
        self,
        event_type: str,
        instance_id: str,
        data: dict[str, Any],
        *,
        account_id: str | None = None,
        site_id: str | None = None,
        user_id: str | None = None,
        now: float | None = None,
    ) -> str:
        """The raw request body Wix would post: a compact RS256 JWT in Wix's envelope."""
        envelope: dict[str, Any] = {
            "data": _compact(data),
            "instanceId": instance_id,
            "eventType": event_type,
        }
        if user_id is not None:
            envelope["identity"] = _compact({"identityType": "WIX_USER", "wixUserId": user_id})
        if account_id is not None or site_id is not None:
            envelope["accountInfo"] = {"accountId": account_id, "siteId": site_id}
        issued = int(time.time() if now is None else now)
        claims = {"data": _compact(envelope), "iat": issued, "exp": issued + WEBHOOK_TTL}
        header = {"kid": self.key_id, "alg": "RS256"}
        signing_input = f"{_b64url(_compact(header).encode())}.{_b64url(_compact(claims).encode())}"
        signature = self._key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(signature)}"

    def deliver(self, event_type: str, instance_id: str, body: str) -> WebhookDelivery | None:
        """POST *body* to :attr:`url` (``None`` when no URL is set); logs and returns the outcome."""
        url = self.url
        if url is None:
            return None
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"the webhook URL must be http:// or https://, not {url!r}")
        headers = {"Content-Type": "text/plain"}
        request = urllib.request.Request(url, data=body.encode("ascii"), method="POST", headers=headers)  # noqa: S310
        started = time.monotonic()
        status: int | None = None
        error: str | None = None
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:  # noqa: S310 - the developer's URL
                status = answer.status
        except urllib.error.HTTPError as exc:  # the app answered, with an error status
            status = exc.code
            exc.close()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            error = f"{type(reason).__name__}: {reason}" if isinstance(reason, BaseException) else str(reason)
        elapsed = time.monotonic() - started
        delivery = WebhookDelivery(event_type, instance_id, url, body, status, error, elapsed)
        what = f"webhook {event_type} for {instance_id} -> {url}"
        if delivery.ok:
            log.info("%s: HTTP %s in %.0f ms", what, status, elapsed * 1000)
        elif status is not None:
            log.warning("%s: the app answered HTTP %s", what, status)
        else:
            log.warning("%s: not delivered (%s)", what, error)
        return delivery
