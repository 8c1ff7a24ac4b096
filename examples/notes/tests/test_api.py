"""The notes API over real HTTP: isolation per installation, token refusals, Wix down, webhooks."""

from __future__ import annotations

import logging
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import Engine, select

import tenancy
from tenancy.emulator import Emulator
from tenancy.testing import WebhookSigner
from tests.conftest import auth, seed_site


def _tenant_row(engine: Engine, iid: str) -> dict:
    with engine.connect() as conn:
        row = conn.execute(
            select(tenancy.Tenant.__table__).where(tenancy.Tenant.instance_id == uuid.UUID(iid))
        )
        return dict(row.one()._mapping)


def test_two_sites_see_only_their_own_rows(api: str, tokens: dict[str, str], emulator: Emulator) -> None:
    """Each token lists only its installation's notes; a note cannot go into another site's notebook."""
    a, b = emulator.instance_ids[0], emulator.instance_ids[1]
    notebook_a = seed_site(api, tokens[a], "secret-of-a")
    seed_site(api, tokens[b], "secret-of-b")
    for iid, mine in ((a, "secret-of-a"), (b, "secret-of-b")):
        titles = [
            n["title"] for n in requests.get(f"{api}/notes", headers=auth(tokens[iid]), timeout=10).json()
        ]
        assert titles == [mine]
    # B naming A's notebook: not found (the composite key and RLS agree; nothing is written).
    stolen = requests.post(
        f"{api}/notes", json={"notebook_id": notebook_a, "title": "x"}, headers=auth(tokens[b]), timeout=10
    )
    assert stolen.status_code == 404
    site = requests.get(f"{api}/site", headers=auth(tokens[b]), timeout=10).json()
    assert site["instance_id"] == b


def test_a_bad_token_gets_401_and_costs_one_wix_call(api: str, emulator: Emulator) -> None:
    """401 in FastAPI's format; repeating the token (or sending none) never asks Wix again."""
    before = emulator.count("token_info")
    for _ in range(4):
        answer = requests.get(f"{api}/notes", headers=auth("OauthNG.JWS.emu-not-a-real-token"), timeout=10)
        assert answer.status_code == 401
        assert answer.json() == {"detail": "invalid token"}
        assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert requests.get(f"{api}/notes", timeout=10).status_code == 401
    assert emulator.count("token_info") - before == 1


def test_another_apps_token_is_refused(api: str, emulator: Emulator) -> None:
    """A real token issued for another app id opens nothing."""
    token = emulator.mint_token(emulator.instance_ids[2], client_id=str(uuid.uuid4()))
    assert requests.get(f"{api}/notes", headers=auth(token), timeout=10).status_code == 401


def test_wix_down_gets_503_with_retry_after_and_cached_tokens_still_work(
    api: str, emulator: Emulator, tokens: dict[str, str]
) -> None:
    """A token Wix cannot check now is neither accepted nor refused: 503 + Retry-After, then 200."""
    known = emulator.instance_ids[3]
    assert requests.get(f"{api}/notes", headers=auth(tokens[known]), timeout=10).status_code == 200
    fresh = emulator.mint_token(emulator.instance_ids[4])
    emulator.set_faults(rate=1.0, kinds=["503"], endpoints=["token_info"])
    try:
        answer = requests.get(f"{api}/notes", headers=auth(fresh), timeout=30)
        assert answer.status_code == 503
        assert answer.headers["Retry-After"] == "5"
        assert "detail" in answer.json()
        # A token resolved before Wix went down keeps working from the cache.
        assert requests.get(f"{api}/notes", headers=auth(tokens[known]), timeout=10).status_code == 200
    finally:
        emulator.clear_faults()
    assert requests.get(f"{api}/notes", headers=auth(fresh), timeout=10).status_code == 200


def test_a_signed_webhook_changes_the_tenant_row(
    api: str, emulator: Emulator, signer: WebhookSigner, admin_engine: Engine, tokens: dict[str, str]
) -> None:
    """AppRemoved, signed with the app's key: the tenants row is marked removed at once and the
    site's (cached) token gets 401; AppInstalled brings it back."""
    iid = emulator.instance_ids[5]
    assert requests.get(f"{api}/notes", headers=auth(tokens[iid]), timeout=10).status_code == 200  # registers
    assert _tenant_row(admin_engine, iid)["status"] == "active"
    answer = requests.post(f"{api}/webhooks/wix", data=signer.sign("AppRemoved", iid), timeout=10)
    assert (answer.status_code, answer.json()) == (200, {"action": "removed"})
    assert _tenant_row(admin_engine, iid)["status"] == "removed"
    assert requests.get(f"{api}/notes", headers=auth(tokens[iid]), timeout=10).status_code == 401
    answer = requests.post(f"{api}/webhooks/wix", data=signer.sign("AppInstalled", iid), timeout=10)
    assert (answer.status_code, answer.json()) == (200, {"action": "refresh"})
    assert requests.get(f"{api}/notes", headers=auth(tokens[iid]), timeout=10).status_code == 200


def test_a_forged_webhook_gets_401_and_changes_nothing(
    api: str, emulator: Emulator, signer: WebhookSigner, admin_engine: Engine, tokens: dict[str, str]
) -> None:
    """Signed with another key (or not a JWT at all): 401, and the row is exactly as before."""
    iid = emulator.instance_ids[6]
    assert requests.get(f"{api}/notes", headers=auth(tokens[iid]), timeout=10).status_code == 200
    before = _tenant_row(admin_engine, iid)
    for body in (WebhookSigner().sign("AppRemoved", iid), "not-a-jwt"):  # another key; no JWT
        answer = requests.post(f"{api}/webhooks/wix", data=body, timeout=10)
        assert (answer.status_code, answer.json()) == (401, {"detail": "invalid webhook"})
    assert _tenant_row(admin_engine, iid) == before


def test_log_records_carry_the_tenant(
    api: str, emulator: Emulator, tokens: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """The handler's log line (in uvicorn's worker thread) carries the caller's instance_id."""
    iid = emulator.instance_ids[7]
    with caplog.at_level(logging.INFO, logger="notes"):
        assert requests.get(f"{api}/notes", headers=auth(tokens[iid]), timeout=10).status_code == 200
    lines = [r for r in caplog.records if r.name == "notes"]
    assert lines and all(getattr(r, "instance_id", None) == iid for r in lines)


def test_200_concurrent_requests_across_20_tenants(
    api: str, emulator: Emulator, tokens: dict[str, str]
) -> None:
    """Every response holds only the rows of the tenant whose token asked."""
    sites = emulator.instance_ids[8:20]
    for iid in sites:
        seed_site(api, tokens[iid], f"only-{iid}")
    everyone = emulator.instance_ids[:20]

    def ask(n: int) -> tuple[str, int, list[str]]:
        iid = everyone[n % len(everyone)]
        answer = requests.get(f"{api}/notes", headers=auth(tokens[iid]), timeout=60)
        return iid, answer.status_code, [note["title"] for note in answer.json()]

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(ask, range(200)))
    assert len(results) == 200
    for iid, status, titles in results:
        assert status == 200
        assert all(title in (f"only-{iid}", "secret-of-a", "secret-of-b") for title in titles)
        if iid in sites:
            assert titles == [f"only-{iid}"]


def test_the_sync_fills_what_the_api_shows(
    api: str, emulator: Emulator, admin_engine: Engine, tokens: dict[str, str]
) -> None:
    """`tenancy sync` (as the README schedules it) brings Wix's site name into the tenants row."""
    iid = emulator.instance_ids[9]
    with tenancy.WixClient(emulator.app_id, emulator.app_secret, base_url=emulator.base_url) as wix:
        report = tenancy.sync(admin_engine, wix, tenancy.SyncOptions(mode="instances", instances=[iid]))
    assert report.ok
    site = requests.get(f"{api}/site", headers=auth(tokens[iid]), timeout=10).json()
    assert site["site_display_name"] == emulator.site(iid).site_display_name
