"""Webhook bodies are bounded before they are read, on FastAPI (uvicorn) and Flask (werkzeug).

A raw socket client announces a huge body (or streams a chunked one without end): the route
must answer 413 while the body is still incomplete, i.e. without waiting for (and holding) it.
Before the bound, both routes read the whole body first: these requests never got an answer.
"""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests
from fastapi import FastAPI
from flask import Flask
from sqlalchemy import Engine, select
from werkzeug.serving import make_server

import tenancy
from tenancy.integrations.fastapi import TenancyFastAPI
from tenancy.integrations.flask import FlaskTenancy
from tenancy.tenants.model import Tenant
from tenancy.testing import WebhookSigner, serve_asgi
from tenancy.wix.webhooks import MAX_WEBHOOK_BYTES

pytestmark = pytest.mark.postgres

# Generous: only a server that never answers (it waits for the rest of the body) hits it.
_NO_ANSWER = 60.0


@pytest.fixture(scope="module", params=["fastapi", "flask"])
def hook_url(request: pytest.FixtureRequest, web_settings: tenancy.Settings) -> Iterator[str]:
    if request.param == "fastapi":
        tenancy_app = TenancyFastAPI(web_settings)
        app = FastAPI(lifespan=tenancy_app.lifespan)
        tenancy_app.add_webhook_route(app)
        with serve_asgi(app) as url:
            yield f"{url}/webhooks/wix"
        return
    flask_app = Flask(__name__)
    ext = FlaskTenancy(flask_app, settings=web_settings)
    server = make_server("127.0.0.1", 0, flask_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/webhooks/wix"
    server.shutdown()
    ext.close(flask_app)


def _raw_post(url: str, headers: list[str], body: Iterator[bytes]) -> tuple[int, int]:
    """Send a POST by hand; returns (the answer's status, body bytes sent before it came)."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=_NO_ANSWER) as sock:
        head = [f"POST {parts.path} HTTP/1.1", f"Host: {parts.netloc}", *headers, "", ""]
        sock.sendall("\r\n".join(head).encode())
        sent = 0
        for chunk in body:
            try:
                sock.sendall(chunk)
            except OSError:  # the server answered and closed: stop sending
                break
            sent += len(chunk)
        answer = b""
        while b"\r\n" not in answer:
            data = sock.recv(4096)
            if not data:
                break
            answer += data
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0
    return status, sent


def test_a_huge_announced_body_is_refused_before_reading(hook_url: str) -> None:
    """Content-Length: 512 MiB and not one body byte sent: 413 at once."""
    status, _ = _raw_post(hook_url, [f"Content-Length: {512 * 1024 * 1024}"], iter(()))
    assert status == 413


def test_a_chunked_body_is_refused_once_past_the_bound(hook_url: str) -> None:
    """A chunked body without end: 413 once it passes MAX_WEBHOOK_BYTES, never waiting for the end."""
    chunk = b"x" * 16_384
    framed = b"%x\r\n%s\r\n" % (len(chunk), chunk)
    count = MAX_WEBHOOK_BYTES // len(chunk) + 2  # just past the bound; no terminating chunk

    def chunks() -> Iterator[bytes]:
        for _ in range(count):
            yield framed

    status, _ = _raw_post(hook_url, ["Transfer-Encoding: chunked"], chunks())
    assert status == 413


def test_a_body_at_the_bound_is_still_read(hook_url: str) -> None:
    """Exactly MAX_WEBHOOK_BYTES (not a JWT): read and refused as an invalid webhook (401)."""
    answer = requests.post(hook_url, data=b"x" * MAX_WEBHOOK_BYTES, timeout=_NO_ANSWER)
    assert answer.status_code == 401


def test_a_signed_chunked_webhook_still_applies(
    hook_url: str, signer: WebhookSigner, web_admin: Engine
) -> None:
    """A real event sent chunked (no Content-Length) is read whole and applied."""
    iid = uuid.uuid4()
    body = signer.sign("AppInstalled", str(iid)).encode()
    answer = requests.post(hook_url, data=iter([body[:100], body[100:]]), timeout=_NO_ANSWER)
    assert answer.status_code == 200 and answer.json()["action"] == "refresh"
    with web_admin.connect() as conn:
        assert conn.scalar(select(Tenant.status).where(Tenant.instance_id == iid)) == "active"
