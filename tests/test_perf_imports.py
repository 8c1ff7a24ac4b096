"""The benchmarks live apart from the tests (``tests/perf``, not collected), so nothing else
notices when a refactor breaks one: each module must at least import."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

PERF = Path(__file__).resolve().parent / "perf"


@pytest.mark.parametrize("module", sorted(p.stem for p in PERF.glob("*.py") if p.stem != "__init__"))
def test_every_benchmark_module_imports(module: str) -> None:
    importlib.import_module(f"tests.perf.{module}")
