"""Shared helpers for the Wix tests: sample loading, quiet clients, recorded sleeps."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tenancy.emulator import Emulator
from tenancy.wix.client import WixClient

FIXTURES = Path(__file__).parent / "fixtures" / "wix"


def sample(name: str) -> Any:
    """A sample payload from tests/fixtures/wix (copied from the shared Wix research)."""
    return json.loads((FIXTURES / name).read_text())


class Sleeps:
    """A ``sleep`` that records the delays asked for instead of waiting."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


class Clock:
    """A settable clock for cache expiry."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def client_for(emu: Emulator, **kwargs: Any) -> WixClient:
    """A client pointed at the emulator with tiny, seeded backoffs."""
    options: dict[str, Any] = {
        "base_url": emu.base_url,
        "timeout": 5.0,
        "max_retries": 3,
        "backoff_base": 0.001,
        "backoff_max": 0.004,
        "retry_after_max": 0.01,
        "rng": random.Random(0),
    }
    options.update(kwargs)
    return WixClient(emu.app_id, emu.app_secret, **options)


def sample_reply(name: str) -> dict[str, Any]:
    """``respond_with`` arguments that serve an error sample verbatim (status, body, headers)."""
    data = sample(name)
    return {"status": data["status"], "body": data["body"], "headers": dict(data["headers"])}


def at_once(count: int, call: Callable[[], object]) -> list[object]:
    """Run ``call`` in ``count`` threads released together; each result or raised exception."""
    barrier = threading.Barrier(count)
    outcomes: list[object] = []

    def work() -> None:
        barrier.wait()
        try:
            outcomes.append(call())
        except Exception as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=work) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes
