"""What the two instruction-count benchmarks share: reading callgrind's total and reporting.

:mod:`tests.perf.server_instructions` counts the PostgreSQL backend's instructions per
transaction, :mod:`tests.perf.client_instructions` the Python process's; both take the
difference of two runs (W and W + N transactions) so that everything before the measured
transactions cancels out.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def arguments(doc: str | None, *, warmup: int) -> argparse.ArgumentParser:
    """The options both benchmarks take: ``--txns``, ``--warmup`` (default *warmup*), ``--json``."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--txns", type=int, default=300, help="measured transactions per variant")
    parser.add_argument("--warmup", type=int, default=warmup)
    parser.add_argument("--json", dest="json_path")
    return parser


def total(path: Path) -> int:
    """The instruction total of one callgrind output file."""
    for line in path.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"no instruction total in {path}")


def report(
    figures: dict[str, float], what: str, headline: str, meta: dict[str, Any], json_path: str | None
) -> None:
    """Print *figures* (instructions per transaction by variant, ``none`` first) as a table
    under *headline*; write them with *meta* to *json_path* when given."""
    base = figures["none"]
    print(headline)
    print(f"| variant | {what} | x none |")
    print("|---|---|---|")
    for name, value in figures.items():
        print(f"| {name} | {value / 1000:,.1f}k | {value / base:.3f} |")
    if json_path:
        with open(json_path, "w", encoding="utf-8") as f:
            json.dump({"meta": meta, "instructions_per_txn": figures}, f, indent=2)
            f.write("\n")
