"""FastAPI and Flask answer tenancy's refusals alike: JSON in one shape, the same statuses and
headers, and one INFO line of tenancy's own per refused token (never the token)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest
import requests
from fastapi import Depends, FastAPI
from flask import Flask, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.serving import make_server

import tenancy
from tenancy.emulator import Emulator
from tenancy.integrations.fastapi import TenancyFastAPI
from tenancy.integrations.flask import FlaskTenancy
from tenancy.testing import WebhookSigner, serve_asgi
from tests.integrations.conftest import Item, bearer

pytestmark = pytest.mark.postgres

BOGUS = "OauthNG.JWS.emu-not-a-real-token"


def _fastapi(settings: tenancy.Settings) -> FastAPI:
    wix = TenancyFastAPI(settings)
    app = FastAPI(lifespan=wix.lifespan)
    wix.add_webhook_route(app, "/webhooks/wix")

    @app.get("/items")
    def items(db: Session = Depends(wix.session)) -> list[str]:  # noqa: B008 - FastAPI's idiom
        return list(db.scalars(select(Item.name)))

    return app


@pytest.fixture(scope="module")
def apps(web_settings: tenancy.Settings) -> Iterator[dict[str, str]]:
    """Both apps, the same settings, served for real: {"fastapi": url, "flask": url}."""
    flask_app = Flask("tenancy_error_shapes")
    ext = FlaskTenancy(flask_app, settings=web_settings)

    @flask_app.get("/items")
    def items() -> ResponseReturnValue:
        return jsonify([i.name for i in ext.session.scalars(select(Item))])

    server = make_server("127.0.0.1", 0, flask_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with serve_asgi(_fastapi(web_settings)) as fastapi_url:
            yield {"fastapi": fastapi_url, "flask": f"http://127.0.0.1:{server.server_port}"}
    finally:
        server.shutdown()
        thread.join(timeout=10)
        ext.close(flask_app)


FRAMEWORKS = ["fastapi", "flask"]


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("headers", [bearer(BOGUS), {}], ids=["refused", "missing"])
def test_a_refused_token_is_a_json_401_with_www_authenticate(
    apps: dict[str, str], framework: str, headers: dict[str, str]
) -> None:
    """Flask used to answer werkzeug's HTML page; now both answer the same JSON."""
    answer = requests.get(f"{apps[framework]}/items", headers=headers, timeout=10)
    assert answer.status_code == 401
    assert answer.headers["Content-Type"].startswith("application/json")
    assert answer.json() == {"detail": "invalid token"}
    assert answer.headers["WWW-Authenticate"].lower() == "bearer"


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_wix_down_is_a_json_503_with_retry_after(apps: dict[str, str], framework: str, emu: Emulator) -> None:
    token = emu.mint_token(emu.instance_ids[0])
    emu.set_faults(rate=1.0, kinds=["503"], endpoints=["token_info"])
    try:
        answer = requests.get(f"{apps[framework]}/items", headers=bearer(token), timeout=30)
    finally:
        emu.clear_faults()
    assert (answer.status_code, answer.headers["Retry-After"]) == (503, "5")
    assert answer.headers["Content-Type"].startswith("application/json")
    assert answer.json() == {"detail": "Wix is unavailable, try again"}


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_forged_webhook_is_a_json_401_and_one_info_line(
    apps: dict[str, str], framework: str, emu: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tenancy")
    forged = WebhookSigner().sign("AppRemoved", emu.instance_ids[1])  # a key the app does not trust
    answer = requests.post(f"{apps[framework]}/webhooks/wix", data=forged, timeout=10)
    assert (answer.status_code, answer.json()) == (401, {"detail": "invalid webhook"})
    lines = [
        r for r in caplog.records if r.name.startswith("tenancy") and "webhook refused" in r.getMessage()
    ]
    assert [(r.levelno, r.getMessage()) for r in lines] == [
        (
            logging.INFO,
            "webhook refused with 401: webhook signature does not verify with the app's public key",
        )
    ]


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_refused_token_logs_one_info_line_with_the_reason_and_not_the_token(
    apps: dict[str, str], framework: str, emu: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: only the server's access log said 401. Now tenancy says why, once per request."""
    caplog.set_level(logging.DEBUG, logger="tenancy")
    expired = emu.mint_token(emu.instance_ids[2], ttl=-3600)
    answer = requests.get(f"{apps[framework]}/items", headers=bearer(expired), timeout=10)
    assert answer.status_code == 401
    info = [r for r in caplog.records if r.name.startswith("tenancy") and r.levelno >= logging.INFO]
    assert [r.getMessage() for r in info] == ["request refused with 401: token inactive"]
    everything = " ".join(r.getMessage() for r in caplog.records)
    assert expired not in everything and expired[-12:] not in everything
