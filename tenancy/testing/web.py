"""Test your web app for real: serve it on a free loopback port, sign Wix webhooks for it.

>>> with serve_asgi(app) as url:                       # uvicorn in a thread (wix-tenancy[fastapi])
...     requests.get(f"{url}/notes", headers={"Authorization": f"Bearer {token}"})
>>> signer = WebhookSigner()                           # give the app signer.public_pem
>>> requests.post(f"{url}/webhooks/wix", data=signer.sign("AppRemoved", instance_id))
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

__all__ = ["WebhookSigner", "serve_asgi"]


@contextmanager
def serve_asgi(app: Any, *, start_timeout: float = 10.0) -> Iterator[str]:
    """Serve an ASGI *app* (FastAPI) with uvicorn in a thread, lifespan included; yields its URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + start_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start (see its log above)")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class WebhookSigner:
    """Signs Wix webhook bodies (RS256 JWTs, as Wix sends them) with a fresh RSA key.

    Configure the app under test with :attr:`public_pem` (``WIX_WEBHOOK_PUBLIC_KEY``).
    """

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_pem = (
            self.key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    def __repr__(self) -> str:
        return "WebhookSigner(rsa_bits=2048)"

    def sign(
        self, event_type: str, instance_id: str, *, data: dict[str, Any] | None = None, ttl: int = 300
    ) -> str:
        """A request body for *event_type* about *instance_id*, valid for *ttl* seconds."""
        envelope = {"eventType": event_type, "instanceId": str(instance_id), "data": json.dumps(data or {})}
        now = int(time.time())
        claims = {"data": json.dumps(envelope), "iat": now, "exp": now + ttl}
        signing_input = (
            f"{_b64(json.dumps({'alg': 'RS256', 'typ': 'JWT'}).encode())}.{_b64(json.dumps(claims).encode())}"
        )
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64(signature)}"
