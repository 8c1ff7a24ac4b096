"""Web apps served for real (werkzeug, uvicorn) on free ports, the emulator as Wix, PostgreSQL.

The database is migrated by the owner role, with one extra tenant table (``web_items``) made
by the owner; the apps connect as the plain runtime role, so RLS applies to every request.
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
import uvicorn
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from sqlalchemy import Engine, Identity, MetaData, String, create_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import tenancy
from tenancy.db.models import NAMING_CONVENTION
from tenancy.emulator import Emulator
from tests.conftest import migrate
from tests.pgserver import Database, fresh_database


class WebBase(DeclarativeBase):
    """The web tests' own models (tenancy.Base stays equal to the migrations)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Item(tenancy.TenantScoped, WebBase):
    __tablename__ = "web_items"
    id: Mapped[int] = mapped_column(Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))


def free_socket() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


class Uvicorn:
    """An ASGI app served by uvicorn in a thread on a free loopback port."""

    def __init__(self, app: Any) -> None:
        self._sock = free_socket()
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
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


def sign_event(event_type: str, instance_id: str, key: rsa.RSAPrivateKey) -> str:
    """A Wix webhook body: an RS256 JWT whose claims.data is the JSON envelope."""

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    envelope = {"eventType": event_type, "instanceId": instance_id, "data": "{}"}
    now = int(time.time())
    head = b64(json.dumps({"alg": "RS256"}).encode())
    body = b64(json.dumps({"data": json.dumps(envelope), "iat": now, "exp": now + 300}).encode())
    signature = key.sign(f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{head}.{body}.{b64(signature)}"


@pytest.fixture(scope="module")
def web_database(pg_server: str) -> Iterator[Database]:
    with fresh_database(prefix="tenancy_web") as db:
        owner = create_engine(db.admin_url)
        migrate(owner, runtime_role=db.runtime)
        WebBase.metadata.create_all(owner)
        owner.dispose()
        yield db


@pytest.fixture(scope="module")
def web_admin(web_database: Database) -> Iterator[Engine]:
    engine = create_engine(web_database.admin_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(sites=4, seed=11) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def webhook_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def web_settings(web_database: Database, emu: Emulator, webhook_key: rsa.RSAPrivateKey) -> tenancy.Settings:
    pem = (
        webhook_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return tenancy.Settings(
        database_url=web_database.runtime_url,
        admin_database_url=web_database.admin_url,
        wix_app_id=emu.app_id,
        wix_app_secret=emu.app_secret,
        wix_api_base_url=emu.base_url,
        wix_webhook_public_key=pem,
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
