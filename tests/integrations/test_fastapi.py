"""TenancyFastAPI behind uvicorn: sync and async sessions per request, refusals, commit rules."""

# No `from __future__ import annotations`: FastAPI reads the handlers' annotations at run time,
# and `AsyncDb` is local to _app().
import dataclasses
from collections.abc import Iterator
from typing import Annotated

import pytest
import requests
from fastapi import Depends, FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

import tenancy
from tenancy.emulator import Emulator
from tenancy.integrations.fastapi import TenancyFastAPI
from tenancy.testing import serve_asgi
from tests.integrations.conftest import Item, bearer

pytestmark = pytest.mark.postgres


def _app(settings: tenancy.Settings) -> FastAPI:
    tenancy_app = TenancyFastAPI(settings, asyncio=True)
    app = FastAPI(lifespan=tenancy_app.lifespan)
    AsyncDb = Annotated[AsyncSession, Depends(tenancy_app.async_session)]

    @app.get("/items")
    async def items(db: AsyncDb) -> list[str]:
        return list(await db.scalars(select(Item.name).order_by(Item.id)))

    @app.post("/items/{name}")
    async def add(name: str, db: AsyncDb, commit: bool = True) -> dict[str, bool]:
        db.add(Item(name=name))
        await db.flush()
        if commit:
            await db.commit()
        return {"committed": commit}

    return app


@pytest.fixture(scope="module")
def url(web_settings: tenancy.Settings) -> Iterator[str]:
    with serve_asgi(_app(web_settings)) as served:
        yield served


def test_async_sessions_per_request(url: str, emu: Emulator) -> None:
    """Each token sees its own rows; an uncommitted write is rolled back; a bad token is 401."""
    a, b = (emu.mint_token(iid) for iid in emu.instance_ids[2:4])
    assert requests.post(f"{url}/items/async-a", headers=bearer(a), timeout=10).json() == {"committed": True}
    assert requests.post(f"{url}/items/async-b", headers=bearer(b), timeout=10).status_code == 200
    assert requests.post(f"{url}/items/draft?commit=false", headers=bearer(a), timeout=10).status_code == 200
    assert requests.get(f"{url}/items", headers=bearer(a), timeout=10).json() == ["async-a"]
    assert requests.get(f"{url}/items", headers=bearer(b), timeout=10).json() == ["async-b"]
    refused = requests.get(f"{url}/items", headers=bearer("OauthNG.JWS.emu-bogus"), timeout=10)
    assert (refused.status_code, refused.json()) == (401, {"detail": "invalid token"})


def _sync_app(settings: tenancy.Settings) -> FastAPI:
    tenancy_app = TenancyFastAPI(settings)
    app = FastAPI(lifespan=tenancy_app.lifespan)
    Db = Annotated[Session, Depends(tenancy_app.session)]

    @app.get("/items")
    def items(db: Db) -> list[str]:
        return list(db.scalars(select(Item.name).order_by(Item.id)))

    @app.post("/items/{name}")
    def add(name: str, db: Db, then: str = "commit") -> dict[str, str]:
        db.add(Item(name=name))
        db.flush()  # written inside the request's transaction
        if then == "raise":
            raise RuntimeError("the handler failed after writing")
        if then == "commit":
            db.commit()
        return {"then": then}

    return app


def test_sync_sessions_keep_only_what_the_handler_commits(
    web_settings: tenancy.Settings, emu: Emulator
) -> None:
    """Committed: kept. Not committed, or the handler raised after writing: rolled back, session closed."""
    token = emu.mint_token(emu.instance_ids[0])
    with serve_asgi(_sync_app(web_settings)) as url:
        before = requests.get(f"{url}/items", headers=bearer(token), timeout=10).json()
        assert requests.post(f"{url}/items/kept", headers=bearer(token), timeout=10).status_code == 200
        assert (
            requests.post(f"{url}/items/draft?then=leave", headers=bearer(token), timeout=10).status_code
            == 200
        )
        assert (
            requests.post(f"{url}/items/boom?then=raise", headers=bearer(token), timeout=10).status_code
            == 500
        )
        after = requests.get(f"{url}/items", headers=bearer(token), timeout=10).json()
    assert after == [*before, "kept"]


def test_a_webhook_route_without_the_public_key_stops_the_app_at_startup(
    web_settings: tenancy.Settings,
) -> None:
    """Not a 500 on Wix's first webhook: the lifespan refuses to start, naming the variable."""
    settings = dataclasses.replace(web_settings, wix_webhook_public_key=None)
    tenancy_app = TenancyFastAPI(settings)
    tenancy_app.add_webhook_route(FastAPI(), "/hooks/wix")
    with pytest.raises(tenancy.ConfigurationError, match="/hooks/wix needs WIX_WEBHOOK_PUBLIC_KEY"):
        tenancy_app.start()
    with pytest.raises(tenancy.ConfigurationError, match="not started"):
        tenancy_app.runtime  # noqa: B018 - nothing half-started is left behind
    TenancyFastAPI(settings).start().close()  # without a webhook route the key is not needed
