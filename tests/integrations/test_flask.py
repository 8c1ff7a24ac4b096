"""The Flask extension behind werkzeug's real server: sessions per request, refusals, webhooks."""

from __future__ import annotations

import dataclasses
import logging
import threading
import uuid
from collections.abc import Iterator

import pytest
import requests
from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue
from sqlalchemy import Engine, select
from werkzeug.serving import make_server

import tenancy
from tenancy.emulator import Emulator
from tenancy.integrations.flask import FlaskTenancy
from tenancy.testing import WebhookSigner
from tests.integrations.conftest import Item, bearer

pytestmark = pytest.mark.postgres

log = logging.getLogger("web.flask")


def _app(settings: tenancy.Settings) -> tuple[Flask, FlaskTenancy]:
    app = Flask("tenancy_flask_test")
    ext = FlaskTenancy(app, settings=settings)

    @app.get("/items")
    def items() -> ResponseReturnValue:
        names = [i.name for i in ext.session.scalars(select(Item).order_by(Item.id))]
        log.info("listed %d items", len(names))  # after the session opened: carries the tenant
        return jsonify(names)

    @app.post("/items")
    def add() -> ResponseReturnValue:
        ext.session.add(Item(name=request.get_json()["name"]))
        if request.args.get("commit") == "no":
            ext.session.flush()  # written in the transaction, never committed
            return jsonify(ok=True)
        if request.args.get("fail") == "yes":
            ext.session.flush()
            raise RuntimeError("the view failed after writing")
        ext.session.commit()
        return jsonify(ok=True), 201

    return app, ext


@pytest.fixture(scope="module")
def flask_url(web_settings: tenancy.Settings) -> Iterator[str]:
    app, ext = _app(web_settings)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)
    ext.close(app)


def _names(url: str, token: str) -> list[str]:
    answer = requests.get(f"{url}/items", headers=bearer(token), timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_two_sites_see_only_their_own_rows(flask_url: str, emu: Emulator) -> None:
    """Rows written through one site's token are invisible to the other's."""
    a, b = (emu.mint_token(iid) for iid in emu.instance_ids[:2])
    for token, name in ((a, "apple"), (b, "banana")):
        answer = requests.post(f"{flask_url}/items", json={"name": name}, headers=bearer(token), timeout=10)
        assert answer.status_code == 201
    assert _names(flask_url, a) == ["apple"]
    assert _names(flask_url, b) == ["banana"]


def test_only_what_the_view_commits_is_kept(flask_url: str, emu: Emulator) -> None:
    """A view that does not commit, or raises after writing, leaves nothing behind."""
    token = emu.mint_token(emu.instance_ids[2])
    uncommitted = requests.post(
        f"{flask_url}/items?commit=no", json={"name": "draft"}, headers=bearer(token), timeout=10
    )
    assert uncommitted.status_code == 200
    failed = requests.post(
        f"{flask_url}/items?fail=yes", json={"name": "boom"}, headers=bearer(token), timeout=10
    )
    assert failed.status_code == 500
    assert _names(flask_url, token) == []


def test_a_bad_token_gets_401_and_costs_one_wix_call(flask_url: str, emu: Emulator) -> None:
    """werkzeug's 401 with WWW-Authenticate; repeating the token asks Wix no more."""
    before = emu.count("token_info")
    for _ in range(3):
        answer = requests.get(f"{flask_url}/items", headers=bearer("OauthNG.JWS.emu-bogus"), timeout=10)
        assert answer.status_code == 401
        assert answer.headers["WWW-Authenticate"].lower().startswith("bearer")
    assert requests.get(f"{flask_url}/items", timeout=10).status_code == 401
    assert emu.count("token_info") - before == 1


def test_wix_down_gets_503_with_retry_after(flask_url: str, emu: Emulator) -> None:
    token = emu.mint_token(emu.instance_ids[3])
    emu.set_faults(rate=1.0, kinds=["503"], endpoints=["token_info"])
    try:
        answer = requests.get(f"{flask_url}/items", headers=bearer(token), timeout=30)
    finally:
        emu.clear_faults()
    assert (answer.status_code, answer.headers["Retry-After"]) == (503, "5")
    assert requests.get(f"{flask_url}/items", headers=bearer(token), timeout=10).status_code == 200


def test_webhooks_signed_apply_and_forged_change_nothing(
    flask_url: str, signer: WebhookSigner, web_admin: Engine
) -> None:
    """A signed AppInstalled registers the tenant; a forged AppRemoved gets 401 and changes nothing."""
    iid = str(uuid.uuid4())

    def status() -> str | None:
        with web_admin.connect() as conn:
            query = select(tenancy.Tenant.status).where(tenancy.Tenant.instance_id == uuid.UUID(iid))
            return conn.execute(query).scalar_one_or_none()

    answer = requests.post(f"{flask_url}/webhooks/wix", data=signer.sign("AppInstalled", iid), timeout=10)
    assert (answer.status_code, answer.json()) == (200, {"action": "refresh"})
    assert status() == "active"
    forged_body = WebhookSigner().sign("AppRemoved", iid)  # signed with a key the app does not trust
    forged = requests.post(f"{flask_url}/webhooks/wix", data=forged_body, timeout=10)
    assert forged.status_code == 401
    assert status() == "active"


def test_log_records_of_a_request_carry_its_tenant(
    flask_url: str, emu: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    iid = emu.instance_ids[1]
    with caplog.at_level(logging.INFO, logger="web.flask"):
        tenancy.log_instance_ids()
        _names(flask_url, emu.mint_token(iid))
    records = [r for r in caplog.records if r.name == "web.flask"]
    assert records and all(getattr(r, "instance_id", None) == iid for r in records)


def test_a_webhook_view_without_the_public_key_stops_init_app(web_settings: tenancy.Settings) -> None:
    """Not a 500 on Wix's first webhook: ``init_app`` refuses, naming the variable and the way out."""
    settings = dataclasses.replace(web_settings, wix_webhook_public_key=None)
    app = Flask("tenancy_flask_without_key")
    with pytest.raises(tenancy.ConfigurationError, match="/webhooks/wix needs WIX_WEBHOOK_PUBLIC_KEY"):
        FlaskTenancy(app, settings=settings)
    assert "tenancy" not in app.extensions  # nothing half-built is left on the app
    assert "tenancy_wix_webhook" not in app.view_functions
    bare = Flask("tenancy_flask_no_webhook")
    ext = FlaskTenancy(bare, settings=settings, webhook_path=None)  # no view: the key is not needed
    ext.close(bare)


def test_after_app_removed_a_cached_token_gets_401_then_app_installed_restores(
    flask_url: str, emu: Emulator, signer: WebhookSigner, web_admin: Engine
) -> None:
    """AppRemoved through the webhook view: the same (resolver-cached) token gets 401 at once in
    this process, and the row stays removed; a later AppInstalled makes it work again."""
    iid = emu.add_site()
    token = emu.mint_token(iid)
    assert requests.get(f"{flask_url}/items", headers=bearer(token), timeout=10).status_code == 200
    removed = requests.post(f"{flask_url}/webhooks/wix", data=signer.sign("AppRemoved", iid), timeout=10)
    assert removed.json() == {"action": "removed"}
    asked = emu.count("token_info")
    for _ in range(2):
        assert requests.get(f"{flask_url}/items", headers=bearer(token), timeout=10).status_code == 401
    assert emu.count("token_info") == asked  # the cached answer, refused by the tenant's state
    with web_admin.connect() as conn:
        query = select(tenancy.Tenant.status).where(tenancy.Tenant.instance_id == uuid.UUID(iid))
        assert conn.execute(query).scalar_one() == "removed"
    installed = requests.post(f"{flask_url}/webhooks/wix", data=signer.sign("AppInstalled", iid), timeout=10)
    assert installed.json() == {"action": "refresh"}
    assert requests.get(f"{flask_url}/items", headers=bearer(token), timeout=10).status_code == 200
