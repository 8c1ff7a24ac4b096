"""The notes app served by uvicorn on a free port, the Wix emulator as Wix, PostgreSQL with two roles.

``tenancy_database`` comes from tenancy's pytest plugin: a fresh database migrated with this
example's alembic.ini (tenancy's revisions and ours) as the owner role, with a plain runtime
role granted what tenant sessions need. The app connects as the runtime role, so row-level
security applies to every request.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import uvicorn
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from sqlalchemy import Engine

import tenancy
from notes_app.main import create_app
from tenancy.emulator import Emulator
from tenancy.testing.postgres import Database

SITES = 20


class Served:
    """An ASGI app served by uvicorn in a thread on a free loopback port."""

    def __init__(self, app: Any) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()


class WebhookSigner:
    """Signs Wix webhook bodies (RS256 JWTs) with a key whose public half the app trusts."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_pem = (
            self.key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    def sign(self, event_type: str, instance_id: str, key: rsa.RSAPrivateKey | None = None) -> str:
        envelope = {"eventType": event_type, "instanceId": instance_id, "data": "{}"}
        now = int(time.time())
        claims = {"data": json.dumps(envelope), "iat": now, "exp": now + 300}

        def b64(raw: bytes) -> str:
            return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

        signing_input = (
            f"{b64(json.dumps({'alg': 'RS256', 'typ': 'JWT'}).encode())}.{b64(json.dumps(claims).encode())}"
        )
        signature = (key or self.key).sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{b64(signature)}"


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    with Emulator(sites=SITES, seed=7) as emu:
        yield emu


@pytest.fixture(scope="session")
def signer() -> WebhookSigner:
    return WebhookSigner()


@pytest.fixture(scope="session")
def settings(tenancy_database: Database, emulator: Emulator, signer: WebhookSigner) -> tenancy.Settings:
    return tenancy.Settings(
        database_url=tenancy_database.runtime_url,
        admin_database_url=tenancy_database.admin_url,
        wix_app_id=emulator.app_id,
        wix_app_secret=emulator.app_secret,
        wix_api_base_url=emulator.base_url,
        wix_webhook_public_key=signer.public_pem,
    )


@pytest.fixture(scope="session")
def api(settings: tenancy.Settings) -> Iterator[str]:
    """The notes app's base URL (uvicorn, real HTTP)."""
    served = Served(create_app(settings))
    yield served.url
    served.stop()


@pytest.fixture(scope="session")
def tokens(emulator: Emulator) -> dict[str, str]:
    """One valid access token per emulated site, by instance id."""
    return {iid: emulator.mint_token(iid) for iid in emulator.instance_ids}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def seed_site(api: str, token: str, title: str) -> int:
    """Create a notebook and one note titled *title* through the API; returns the notebook id."""
    notebook = requests.post(
        f"{api}/notebooks", json={"name": f"nb-{title}"}, headers=auth(token), timeout=10
    )
    assert notebook.status_code == 201, notebook.text
    note = requests.post(
        f"{api}/notes",
        json={"notebook_id": notebook.json()["id"], "title": title},
        headers=auth(token),
        timeout=10,
    )
    assert note.status_code == 201, note.text
    return int(notebook.json()["id"])


@pytest.fixture(scope="session")
def admin_engine(tenancy_admin_engine: Engine) -> Engine:
    return tenancy_admin_engine
