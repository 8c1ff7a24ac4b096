"""Hypothesis profiles and shared fixtures of the fuzz tests.

Profiles (``HYPOTHESIS_PROFILE``): ``tenancy`` (the default) runs a bounded number of
examples per property so the whole package stays within seconds of the suite; ``fuzz`` runs
10,000 per property::

    HYPOTHESIS_PROFILE=fuzz .venv/bin/python -m pytest tests/fuzz

No deadline (HTTP against the emulator and PostgreSQL on a loaded 2-core machine varies),
no example database (nothing written to the working tree).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings
from sqlalchemy import Engine, create_engine, event

import tenancy
from tenancy.emulator import Emulator
from tenancy.testing.postgres import fresh_database
from tests.conftest import migrate
from tests.wix_helpers import client_for

_COMMON = {
    "deadline": None,
    "database": None,
    "print_blob": True,
    "suppress_health_check": [
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
}
settings.register_profile("tenancy", max_examples=150, **_COMMON)
settings.register_profile("fuzz", max_examples=10_000, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "tenancy"))

# A secret-looking marker the strategies plant in tokens and Wix answers: it must never come
# back in an error message, a repr or a log line.
MARK = "zq5SECRETx7k"
APP_SECRET = f"app-secret-{MARK}"


class Records(logging.Handler):
    """Every log record of tenancy and its emulator, formatted, for secret checks."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def take(self) -> str:
        text, self.lines = "\n".join(self.lines), []
        return text


@pytest.fixture(scope="module")
def logs() -> Iterator[Records]:
    handler = Records()
    logger = logging.getLogger("tenancy")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old_level)


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(sites=3, seed=99, app_secret=APP_SECRET, history=10) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def client(emu: Emulator) -> Iterator[tenancy.WixClient]:
    with client_for(emu, max_retries=1, sleep=lambda seconds: None) as wix:
        yield wix


class Checkouts:
    """Counts connections checked out of an engine's pool (a session that touched the database)."""

    def __init__(self, engine: Engine) -> None:
        self.count = 0
        event.listen(engine, "checkout", self._checkout)

    def _checkout(self, *args: object) -> None:
        self.count += 1


@pytest.fixture(scope="module")
def engines(pg_server: str) -> Iterator[tuple[Engine, Engine, Checkouts]]:
    """A fresh migrated database of the module: (runtime engine, admin engine, runtime checkouts)."""
    with fresh_database() as db:
        admin = create_engine(db.admin_url, pool_size=2)
        migrate(admin, runtime_role=db.runtime)
        runtime = create_engine(db.runtime_url, pool_size=2)
        yield runtime, admin, Checkouts(runtime)
        runtime.dispose()
        admin.dispose()
