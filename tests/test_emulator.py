"""The Wix emulator: seeded sites, tokens, control API, faults and the `tenancy emulator` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from tenancy.commands.main import main
from tenancy.emulator import EmulatedSite, Emulator
from tenancy.errors import WixInstanceNotAccessible, WixRateLimited, WixUnavailable
from tenancy.wix.client import WixClient
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
