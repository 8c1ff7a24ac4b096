"""Fixtures of the sync tests: a migrated database per test, and a client for the module's ``emu``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tenancy.emulator import Emulator
from tenancy.wix.client import WixClient
from tests.sync_helpers import SyncDb, migrated_database
from tests.wix_helpers import client_for


@pytest.fixture
def db(pg_server: str) -> Iterator[SyncDb]:
    with migrated_database() as database:
        yield database


@pytest.fixture
def client(emu: Emulator) -> Iterator[WixClient]:
    """A client with tiny backoffs for the ``emu`` fixture of the test module."""
    with client_for(emu) as wix:
        yield wix
