"""Web apps served for real (werkzeug, uvicorn) on free ports, the emulator as Wix, PostgreSQL.

The database is migrated by the owner role, with one extra tenant table (``web_items``) made
by the owner; the apps connect as the plain runtime role, so RLS applies to every request.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, Identity, MetaData, String, create_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import tenancy
from tenancy.emulator import Emulator
from tenancy.models import NAMING_CONVENTION
from tenancy.testing import WebhookSigner
from tenancy.testing.postgres import Database, fresh_database
from tests.conftest import migrate


class WebBase(DeclarativeBase):
    """The web tests' own models (tenancy.Base stays equal to the migrations)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Item(tenancy.TenantScoped, WebBase):
    __tablename__ = "web_items"
    id: Mapped[int] = mapped_column(Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))


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
def signer() -> WebhookSigner:
    return WebhookSigner()


@pytest.fixture(scope="module")
def web_settings(web_database: Database, emu: Emulator, signer: WebhookSigner) -> tenancy.Settings:
    return tenancy.Settings(
        database_url=web_database.runtime_url,
        admin_database_url=web_database.admin_url,
        wix_app_id=emu.app_id,
        wix_app_secret=emu.app_secret,
        wix_api_base_url=emu.base_url,
        wix_webhook_public_key=signer.public_pem,
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
