"""The Wix emulator: seeded sites, tokens, control API, faults and the `tenancy emulator` command."""

from __future__ import annotations

import base64
import contextlib
import http.server
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tenancy.commands.main import main
from tenancy.emulator import CONTROL_ENDPOINTS, EmulatedSite, Emulator
from tenancy.errors import InvalidWebhook, WixInstanceNotAccessible, WixRateLimited, WixUnavailable
from tenancy.settings import URL_VARIABLE, Settings
from tenancy.wix.client import WixClient
from tenancy.wix.webhooks import WebhookVerifier
from tests.wix_helpers import client_for


def test_seeded_sites_are_deterministic() -> None:
    """The same seed gives the same sites; another seed gives others."""
    with (
        Emulator(sites=20, seed=1) as one,
        Emulator(sites=20, seed=1) as two,
        Emulator(sites=20, seed=2) as other,
    ):
        assert one.instance_ids == two.instance_ids
        assert one.app_id == two.app_id and one.app_secret == two.app_secret
        assert [one.site(i).to_body() for i in one.instance_ids] == [
            two.site(i).to_body() for i in two.instance_ids
        ]
        assert set(one.instance_ids).isdisjoint(other.instance_ids)
        free = [one.site(i).is_free for i in one.instance_ids]
        assert any(free) and not all(free)
        assert all(uuid.UUID(i).version == 4 for i in one.instance_ids)


def test_ten_thousand_sites_are_cheap() -> None:
    """10,000 sites fit in memory and the last one is served like the first."""
    with Emulator(sites=10_000, seed=3) as emu, client_for(emu) as client:
        assert len(emu.instance_ids) == 10_000
        last = emu.instance_ids[-1]
        parsed = client.get_app_instance(last)
        assert parsed.instance is not None and str(parsed.instance.instance_id) == last


def test_sites_from_a_file(tmp_path: Path) -> None:
    """Emulator.from_file reads sites (snake_case fields) and optional app credentials."""
    iid = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
    path = tmp_path / "sites.json"
    path.write_text(
        json.dumps(
            {
                "app_id": "11111111-2222-3333-4444-555555555555",
                "app_secret": "file-secret",
                "sites": [{"instance_id": iid, "site_display_name": "From File", "is_free": True}, {}],
            }
        )
    )
    with Emulator.from_file(path) as emu, client_for(emu) as client:
        assert emu.app_id == "11111111-2222-3333-4444-555555555555"
        assert emu.instance_ids[0] == iid and len(emu.instance_ids) == 2
        site = client.get_app_instance(iid).site
        assert site is not None and site.site_display_name == "From File"


def test_bad_site_fields_are_refused(tmp_path: Path) -> None:
    """Unknown site fields raise ValueError, in files and in update_site."""
    path = tmp_path / "sites.json"
    path.write_text(json.dumps([{"colour": "blue"}]))
    with pytest.raises(ValueError, match="colour"):
        Emulator.from_file(path)
    with Emulator(sites=1) as emu, pytest.raises(ValueError, match="colour"):
        emu.update_site(emu.instance_ids[0], colour="blue")


def test_add_site_and_explicit_sites() -> None:
    """Sites can be passed in, or added later with fields or at random."""
    site = EmulatedSite(instance_id="AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE", site_display_name="Given")
    with Emulator([site]) as emu:
        assert emu.instance_ids == ["aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"]
        added = emu.add_site(site_display_name="Added", is_free=False, billing_cycle="MONTHLY")
        random_one = emu.add_site()
        assert emu.instance_ids[1:] == [added, random_one]
        assert emu.site(added).to_body()["instance"]["billing"]["billingCycle"] == "MONTHLY"


def test_token_info_follows_token_state() -> None:
    """Minted tokens are active; expired ones, removed apps' and unknown ones are not."""
    with Emulator(sites=2) as emu, client_for(emu) as client:
        iid = emu.instance_ids[0]
        other_app = emu.mint_token(iid, client_id="another-app")
        assert client.token_info(other_app).client_id == "another-app"
        assert client.token_info(emu.mint_token(iid, ttl=-1)).active is False
        token = emu.mint_token(iid)
        assert client.token_info(token).active is True
        emu.remove_app(iid)
        assert client.token_info(token).active is False
        emu.reinstall_app(iid)
        assert client.token_info(token).active is True
        # An app token is recognised too, as an APP subject.
        app_info = client.token_info(client.app_access_token(emu.instance_ids[1]))
        assert (app_info.active, app_info.subject_type) == (True, "APP")


def test_bearer_prefix_is_refused_by_get_app_instance() -> None:
    """Get App Instance expects the bare token; "Bearer <token>" is a 401, as a guard."""
    with Emulator(sites=1) as emu, client_for(emu) as client:
        token = client.app_access_token(emu.instance_ids[0])
        url = emu.base_url + "/apps/v1/instance"
        assert requests.get(url, headers={"Authorization": token}, timeout=5).status_code == 200
        assert requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=5).status_code == 401


def test_expired_app_tokens_get_401() -> None:
    """App tokens expire after token_ttl seconds on the emulator side."""
    with Emulator(sites=1, token_ttl=0) as emu, client_for(emu) as client:
        token = client.app_access_token(emu.instance_ids[0])
        answer = requests.get(emu.base_url + "/apps/v1/instance", headers={"Authorization": token}, timeout=5)
        assert answer.status_code == 401
        assert answer.json()["details"]["applicationError"]["code"] == "UNAUTHENTICATED"


def test_every_answer_has_a_request_id() -> None:
    """Answers carry a unique x-wix-request-id, errors included."""
    with Emulator(sites=1) as emu:
        ids = {
            requests.post(emu.base_url + "/oauth2/token-info", json={"token": "x"}, timeout=5).headers[
                "x-wix-request-id"
            ]
            for _ in range(3)
        }
        ids.add(requests.get(emu.base_url + "/apps/v1/instance", timeout=5).headers["x-wix-request-id"])
        assert len(ids) == 4


def test_counts_per_endpoint_and_instance() -> None:
    """Counters count requests per endpoint and per instance, and reset."""
    with Emulator(sites=2) as emu, client_for(emu) as client:
        a, b = emu.instance_ids
        client.get_app_instance(a)
        client.get_app_instance(a)
        client.get_app_instance(b)
        assert emu.count("get_app_instance") == 3
        assert (emu.count("get_app_instance", a), emu.count("get_app_instance", b)) == (2, 1)
        assert emu.count("access_token") == 2
        assert emu.counts["get_app_instance:" + a] == 2
        emu.reset_counts()
        assert emu.counts == {} and emu.requests == []


def test_faults_for_one_instance_only() -> None:
    """Faults for one instance hit every request of that instance and no other."""
    with Emulator(sites=2) as emu, client_for(emu, max_retries=0) as client:
        a, b = emu.instance_ids
        client.app_access_token(a)
        emu.set_faults(kinds=("500",), instance_id=a)
        assert client.get_app_instance(b).instance is not None
        with pytest.raises(Exception, match="HTTP 500"):
            client.get_app_instance(a)
        emu.clear_faults()
        assert client.get_app_instance(a).instance is not None


def test_control_api_over_http() -> None:
    """Other processes can add sites, mint tokens, set faults and read counters over HTTP."""
    with Emulator(sites=1) as emu:
        control = emu.base_url + "/_emulator"
        added = requests.post(control + "/sites", json={"site_display_name": "Remote"}, timeout=5).json()
        iid = added["instance_id"]
        assert iid in requests.get(control + "/sites", timeout=5).json()["instance_ids"]
        token = requests.post(control + "/tokens", json={"instance_id": iid}, timeout=5).json()["token"]
        with client_for(emu) as client:
            info = client.token_info(token)
            assert str(info.instance_id) == iid
            requests.post(control + f"/sites/{iid}", json={"locale": "fr"}, timeout=5).raise_for_status()
            site = client.get_app_instance(iid).site
            assert site is not None and site.locale == "fr"
            stats = requests.get(control + "/stats", timeout=5).json()["counts"]
            assert stats["token_info"] == 1 and stats[f"get_app_instance:{iid}"] == 1
            requests.post(control + f"/sites/{iid}/remove", timeout=5).raise_for_status()
            assert emu.site(iid).installed is False
            requests.post(control + f"/sites/{iid}/reinstall", timeout=5).raise_for_status()
            body = {"rate": 1.0, "kinds": ["503"], "times": 1}
            requests.post(control + "/faults", json=body, timeout=5).raise_for_status()
            assert client.get_app_instance(iid).site is not None
            assert emu.count("fault:503") == 1
        requests.post(control + "/reset", timeout=5).raise_for_status()
        assert emu.counts == {}
        bad = requests.post(control + "/faults", json={"kinds": ["meteor"]}, timeout=5)
        assert bad.status_code == 400


def test_a_duplicated_site_is_a_new_instance_naming_its_origin() -> None:
    """Duplicating a site (API or control path): a new instance id and site id, the same site
    data, Get App Instance's originInstanceId and copiedFromTemplate set; the original unchanged."""
    with Emulator(sites=1, seed=5) as emu:
        origin = emu.instance_ids[0]
        copy = emu.duplicate_site(origin)
        control = emu.base_url + "/_emulator"
        answer = requests.post(control + f"/sites/{origin}/duplicate", json={}, timeout=5)
        answer.raise_for_status()
        second = answer.json()["instance_id"]
        with client_for(emu) as client:
            for iid in (copy, second):
                app = client.get_app_instance(iid)
                assert app.instance is not None and app.site is not None
                assert app.instance.origin_instance_id == origin and app.instance.copied_from_template
                assert app.site.site_id != emu.site(origin).site_id
                assert app.site.site_display_name == emu.site(origin).site_display_name
            original = client.get_app_instance(origin).instance
            assert original is not None and original.origin_instance_id is None
        assert len({origin, copy, second}) == 3 and emu.instance_ids == [origin, copy, second]


def test_wrong_credentials_get_an_ietf_style_401() -> None:
    """The token endpoint checks client_id and client_secret and answers like RFC 6749."""
    with Emulator(sites=1) as emu:
        body = {
            "grant_type": "client_credentials",
            "client_id": emu.app_id,
            "client_secret": "nope",
            "instance_id": emu.instance_ids[0],
        }
        answer = requests.post(emu.base_url + "/oauth2/token", json=body, timeout=5)
        assert answer.status_code == 401
        assert answer.json() == {"error": "invalid_client", "error_description": "invalid client credentials"}


def test_emulator_serves_hundreds_of_requests_per_second() -> None:
    """A keep-alive client gets a few hundred answers quickly (a loose smoke check, not a benchmark)."""
    with Emulator(sites=100) as emu, client_for(emu) as client:
        started = time.perf_counter()
        for number in range(300):
            client.get_app_instance(emu.instance_ids[number % 100])
        assert time.perf_counter() - started < 30


def test_emulator_command_prints_a_working_base_url() -> None:
    """`tenancy emulator` prints its URL, credentials and tokens, serves, and stops on SIGTERM."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "tenancy", "emulator", "--sites", "2", "--seed", "4"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("# ready"):
                break
        # Every line is shell: `export NAME=value`, or a comment.
        assert all(line.startswith(("export WIX_", "# ")) for line in lines), lines
        values = dict(
            line.removeprefix("export ").split("=", 1) for line in lines if line.startswith("export")
        )
        tokens = [line.split()[2:] for line in lines if line.startswith("# token ")]
        assert "# sites from --seed 4: the same instance ids every run (another seed, other ids)" in lines
        assert "# user tokens (Authorization header), valid for 60 minutes:" in lines
        assert values["WIX_API_BASE_URL"].startswith("http://127.0.0.1:")
        assert len(tokens) == 2
        with WixClient(
            values["WIX_APP_ID"], values["WIX_APP_SECRET"], base_url=values["WIX_API_BASE_URL"]
        ) as client:
            iid, token = tokens[0]
            info = client.token_info(token)
            assert info.active and str(info.instance_id) == iid
            assert client.get_app_instance(iid).instance is not None
    finally:
        process.terminate()
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert "stopped" in out


def test_rate_limit_per_instance() -> None:
    """With rate_limit, requests about an instance (its app token, Get App Instance) answer 429
    past that many a minute per instance; other instances are unaffected."""
    with Emulator(sites=2, rate_limit=4) as emu, client_for(emu, max_retries=0) as client:
        a, b = emu.instance_ids
        for _ in range(3):
            client.get_app_instance(a)
        with pytest.raises(WixRateLimited):
            client.get_app_instance(a)
        assert client.get_app_instance(b).instance is not None
        assert emu.count("rate_limited") == 1


def test_command_refuses_unknown_fault_kinds() -> None:
    """A typo in --fault-kinds is a usage error (exit 2), not a silent default."""
    assert main(["emulator", "--fault-rate", "0.1", "--fault-kinds", "meteor"]) == 2


def test_per_instance_status_refuses_one_instance_in_wix_shapes() -> None:
    """set_instance_status: that instance gets the status in Wix's error shape with a request id;
    the others are served normally; over the control API too."""
    with Emulator(sites=3) as emu, client_for(emu, max_retries=0) as client:
        a, b, c = emu.instance_ids
        emu.set_instance_status(a, 403)
        with pytest.raises(WixInstanceNotAccessible) as denied:
            client.get_app_instance(a)
        assert denied.value.status == 403 and denied.value.request_id
        assert "PERMISSION_DENIED" in str(denied.value)
        assert client.get_app_instance(b).instance is not None
        requests.post(
            f"{emu.base_url}/_emulator/sites/{c}/status", json={"status": 400, "endpoint": "access_token"}
        )
        with pytest.raises(WixInstanceNotAccessible) as refused:
            client.app_access_token(c)
        assert refused.value.status == 400
        emu.clear_overrides()
        assert client.get_app_instance(a).instance is not None


@pytest.mark.parametrize("kind", ["drop", "503"])
def test_outage_switch_takes_every_wix_endpoint_down_but_not_the_control_api(kind: str) -> None:
    """set_outage: every Wix endpoint fails (no answer, or an empty 5xx); clear_outage restores."""
    with Emulator(sites=1) as emu, client_for(emu, max_retries=1) as client:
        requests.post(f"{emu.base_url}/_emulator/outage", json={"kind": kind})
        with pytest.raises(WixUnavailable):
            client.get_app_instance(emu.instance_ids[0])
        with pytest.raises(WixUnavailable):
            client.token_info("OauthNG.JWS.x")
        assert requests.get(f"{emu.base_url}/_emulator/stats").json()["counts"]["outage"] >= 3
        emu.clear_outage()
        assert client.get_app_instance(emu.instance_ids[0]).instance is not None
        with pytest.raises(ValueError, match="outage kind"):
            emu.set_outage("meteor")


# --- webhooks -------------------------------------------------------------------------------

FIXTURES = Path(__file__).parent / "fixtures" / "wix"


def _jwt_part(token: str, index: int) -> dict[str, Any]:
    part = token.split(".")[index]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


class _Receiver(http.server.BaseHTTPRequestHandler):
    """An app's webhook endpoint: records each body, answers the status the test chose."""

    bodies: list[bytes]
    status: int

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).bodies.append(body)
        self.send_response(type(self).status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def _receiver(status: int = 200) -> Iterator[tuple[str, list[bytes]]]:
    bodies: list[bytes] = []
    handler = type("Receiver", (_Receiver,), {"bodies": bodies, "status": status})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/webhooks/wix", bodies
    finally:
        server.shutdown()
        server.server_close()


def test_webhooks_have_wix_envelope_and_verify_with_tenancys_verifier() -> None:
    """A signed event has exactly the JWT layout of Wix's samples (header, claims, envelope,
    payload keys) and tenancy's own WebhookVerifier accepts it with the emulator's key, in
    PEM and in the printed base64 form; another key refuses it."""
    sample = json.loads((FIXTURES / "webhook-app-removed.json").read_text())
    with Emulator(sites=1) as emu:
        iid = emu.instance_ids[0]
        body = emu.sign_webhook(iid, "AppRemoved", {"appId": emu.app_id})
        assert set(_jwt_part(body, 0)) == set(sample["jwtHeader"]) and _jwt_part(body, 0)["alg"] == "RS256"
        claims = _jwt_part(body, 1)
        assert set(claims) == set(sample["jwtClaims"]) and isinstance(claims["data"], str)
        envelope = json.loads(claims["data"])
        assert set(envelope) == set(sample["envelopeParsedFromClaimsData"])
        assert isinstance(envelope["data"], str) and isinstance(envelope["identity"], str)
        for key in (emu.webhook_public_key, emu.webhook_public_key_b64):
            event = WebhookVerifier(key).parse(body.encode())
            assert (event.event_type, str(event.instance_id)) == ("AppRemoved", iid)
            assert event.payload == {"appId": emu.app_id}
            assert event.account_info == {
                "accountId": emu.site(iid).account_id,
                "siteId": emu.site(iid).site_id,
            }
        with Emulator(sites=0) as other, pytest.raises(InvalidWebhook, match="signature"):
            WebhookVerifier(other.webhook_public_key).parse(body)


def test_control_api_delivers_signed_events_for_install_remove_and_plans(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With a webhook URL, installing, removing, reinstalling and changing the plan of a site over
    the control API POST Wix's signed events there; each outcome is logged and answered."""
    caplog.set_level(logging.INFO, logger="tenancy.emulator")
    with _receiver() as (url, bodies), Emulator(sites=0, webhook_url=url) as emu:
        verifier = WebhookVerifier(emu.webhook_public_key)
        control = emu.base_url + "/_emulator"
        added = requests.post(control + "/sites", json={"site_display_name": "Hooked"}, timeout=5).json()
        iid = added["instance_id"]
        assert added["webhook"]["status"] == 200
        steps = [
            ("/remove", None),
            ("/reinstall", None),
            ("/plan", {"package_name": "basic"}),
            ("/plan", {"package_name": "premium", "billing_cycle": "YEARLY"}),
            ("/cancel-plan", None),
        ]
        for step, body in steps:
            answer = requests.post(f"{control}/sites/{iid}{step}", json=body, timeout=5)
            assert answer.status_code == 200, answer.text
            assert answer.json()["webhook"]["status"] == 200
        events = [verifier.parse(body) for body in bodies]
        assert [e.event_type for e in events] == [
            "AppInstalled", "AppRemoved", "AppInstalled",
            "PaidPlanPurchased", "PaidPlanChanged", "PaidPlanAutoRenewalCancelled",
        ]  # fmt: skip
        assert {str(e.instance_id) for e in events} == {iid}
        changed = events[4].payload
        assert (changed["vendorProductId"], changed["cycle"]) == ("premium", "YEARLY")
        assert changed["previousVendorProductId"] == "basic"
        assert emu.site(iid).package_name == "premium" and emu.site(iid).auto_renewing is False
        listed = requests.get(control + "/webhooks", timeout=5).json()
        assert listed["url"] == url and len(listed["deliveries"]) == 6
    lines = [r.getMessage() for r in caplog.records if r.name == "tenancy.emulator"]
    assert sum(f"webhook AppRemoved for {iid} -> {url}: HTTP 200" in line for line in lines) == 1


def test_a_failed_delivery_is_logged_and_the_emulator_keeps_serving(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No app listening, or an app answering 500: the control call still succeeds and says so,
    one warning is logged, and the Wix endpoints keep working."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    with Emulator(sites=1, webhook_url=f"http://127.0.0.1:{port}/hook", webhook_timeout=2) as emu:
        iid = emu.instance_ids[0]
        answer = requests.post(f"{emu.base_url}/_emulator/sites/{iid}/remove", timeout=10)
        assert answer.status_code == 200
        webhook = answer.json()["webhook"]
        assert webhook["status"] is None and "Connection" in webhook["error"]
        assert emu.site(iid).installed is False
        with _receiver(status=500) as (url, bodies):
            emu.webhook_url = url
            assert emu.reinstall_app(iid).status == 500  # type: ignore[union-attr]
            assert len(bodies) == 1
        with client_for(emu) as client:
            assert client.get_app_instance(iid).instance is not None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("not delivered" in line for line in warnings)
    assert any("the app answered HTTP 500" in line for line in warnings)


def test_without_a_webhook_url_nothing_is_sent() -> None:
    """The control API answers "webhook": null and changes the site as before."""
    with Emulator(sites=1) as emu:
        iid = emu.instance_ids[0]
        answer = requests.post(f"{emu.base_url}/_emulator/sites/{iid}/remove", timeout=5).json()
        assert answer == {"webhook": None} and emu.deliveries == []


@pytest.mark.parametrize(
    ("path", "body", "named"),
    [
        ("/outage", {"type": "503"}, "unknown field(s) type"),
        ("/outage", {}, "missing field kind"),
        ("/outage", {"kind": "meteor"}, 'kind must be one of "drop", "500", "503", "timeout", null'),
        ("/outage", b"kind=drop", "the body is not JSON"),
        ("/outage", [1], "the body is not a JSON object"),
        ("/faults", {"rates": 1.0}, "unknown field(s) rates"),
        ("/faults", {"rate": "high"}, "rate must be number or null"),
        ("/latency", {"second": 1}, "unknown field(s) second"),
        ("/tokens", {"ttl": 5}, "missing field instance_id"),
        ("/reset", {"all": True}, "expects no body"),
    ],
)
def test_a_wrong_control_body_is_a_400_naming_the_expected_one_and_changes_nothing(
    path: str, body: Any, named: str
) -> None:
    """Today's bug: a wrong body (e.g. {"type": ...}) silently ended the outage. Now: 400, the
    message shows the expected body, and the outage stays on."""
    with Emulator(sites=1) as emu:
        emu.set_outage("503")
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        answer = requests.post(f"{emu.base_url}/_emulator{path}", data=raw, timeout=5)
        assert answer.status_code == 400
        message = answer.json()["message"]
        assert named in message and f"POST /_emulator{path} expects" in message
        endpoint = next(e for e in CONTROL_ENDPOINTS if e.path == f"/_emulator{path}")
        assert (endpoint.body or "no body") in message
        gone = requests.get(f"{emu.base_url}/apps/v1/instance", timeout=5)
        assert gone.status_code == 503  # the outage is still on


def test_control_api_unknown_site_and_path_are_404s_naming_the_problem() -> None:
    with Emulator(sites=1) as emu:
        missing = requests.post(f"{emu.base_url}/_emulator/sites/{uuid.uuid4()}/remove", timeout=5)
        assert missing.status_code == 404 and "no site with instance id" in missing.json()["message"]
        unknown = requests.post(f"{emu.base_url}/_emulator/crash", json={}, timeout=5)
        assert unknown.status_code == 404 and "POST /_emulator/outage" in unknown.json()["message"]
        listed = requests.get(f"{emu.base_url}/_emulator/endpoints", timeout=5).json()["endpoints"]
        assert [(e["method"], e["path"]) for e in listed] == [(e.method, e.path) for e in CONTROL_ENDPOINTS]


def test_every_control_endpoint_is_documented_in_help_and_readme(capsys: pytest.CaptureFixture[str]) -> None:
    """`tenancy emulator --help` and the README list every control endpoint with its body."""
    assert main(["emulator", "--help"]) == 0
    help_text = capsys.readouterr().out
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    for endpoint in CONTROL_ENDPOINTS:
        assert f"{endpoint.method} {endpoint.path}: {endpoint.effect}" in help_text
        assert f"`{endpoint.method} {endpoint.path}`" in readme, endpoint.path
        if endpoint.body:
            assert f"body: {endpoint.body}" in help_text
            assert endpoint.body.split("  (")[0] in readme, endpoint.path


def test_command_prints_the_webhook_key_and_signs_with_the_given_private_key(tmp_path: Path) -> None:
    """`--webhook-private-key FILE`: the printed WIX_WEBHOOK_PUBLIC_KEY is that key's public half,
    in a form Settings and WebhookVerifier accept; a bad key file is a usage error (exit 2)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key_file = tmp_path / "webhook-key.pem"
    key_file.write_bytes(pem)
    process = subprocess.Popen(
        [sys.executable, "-m", "tenancy", "emulator", "--sites", "1", "--webhook-private-key", str(key_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("# ready"):
                break
    finally:
        process.terminate()
        process.communicate(timeout=10)
    exported = dict(line.removeprefix("export ").split("=", 1) for line in lines if line.startswith("export"))
    settings = Settings.from_env({**exported, URL_VARIABLE: "postgresql+psycopg://x@127.0.0.1/x"})
    printed = base64.b64decode(exported["WIX_WEBHOOK_PUBLIC_KEY"]).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert printed == public.decode() and settings.wix_webhook_public_key
    WebhookVerifier(settings.wix_webhook_public_key)  # accepted as is
    (tmp_path / "bad.pem").write_text("not a key")
    assert main(["emulator", "--webhook-private-key", str(tmp_path / "bad.pem")]) == 2
    assert main(["emulator", "--webhook-url", "ftp://example"]) == 2
