"""The notes app served by uvicorn on a free port, the Wix emulator as Wix, PostgreSQL with two roles.

``tenancy_database`` comes from tenancy's pytest plugin: a fresh database migrated with this
example's alembic.ini (tenancy's revisions and ours) as the owner role, with a plain runtime
role granted what tenant sessions need. The app connects as the runtime role, so row-level
security applies to every request.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from sqlalchemy import Engine

import tenancy
from notes_app.main import create_app
from tenancy.emulator import Emulator
from tenancy.testing import Database, WebhookSigner, serve_asgi

SITES = 20


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
    with serve_asgi(create_app(settings)) as url:
        yield url


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
