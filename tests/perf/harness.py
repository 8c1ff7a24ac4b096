"""A tiny A/B harness: interleaved repetitions, min/median per variant, ratios, a table and JSON.

Absolute times on a shared machine drift by tens of percent between minutes; two variants run
interleaved in the same process drift together, so their ratio holds. Every figure is
therefore a ratio A/B of two variants measured in alternating order (ABAB... then BABA...),
each repetition timing a batch of calls long enough (``target_s``) to swamp timer overhead.
The garbage collector is off inside a timed batch (as :mod:`timeit` does) and run between
batches, so a collection triggered by one variant is not billed to the other.
"""

from __future__ import annotations

import gc
import json
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Row:
    """One line of the table: two variants and their ratio."""

    figure: str
    name: str
    a_label: str
    b_label: str
    unit: str  # "us" (per call, timed) or a count unit
    a_min: float
    a_med: float
    b_min: float
    b_med: float
    target: float | None = None  # ratio (median A / median B) must be <= target
    note: str = ""
    limit: float | None = None  # absolute: A's median (in `unit`) must be <= limit
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio_med(self) -> float:
        return self.a_med / self.b_med if self.b_med else float("inf")

    @property
    def ratio_min(self) -> float:
        return self.a_min / self.b_min if self.b_min else float("inf")

    @property
    def ok(self) -> bool | None:
        if self.target is None and self.limit is None:
            return None
        return (self.target is None or self.ratio_med <= self.target) and (
            self.limit is None or self.a_med <= self.limit
        )

    @property
    def target_text(self) -> str:
        parts = []
        if self.target is not None:
            parts.append(f"A/B <= {self.target:.2f}")
        if self.limit is not None:
            parts.append(f"A <= {_fmt(self.limit)} {self.unit}")
        if not parts:
            return ""
        return " and ".join(parts) + (" ok" if self.ok else " MISSED")

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(ratio_med=self.ratio_med, ratio_min=self.ratio_min, ok=self.ok)
        return d


def _batch(fn: Callable[[], object], inner: int) -> float:
    gc.collect()
    gc.disable()
    try:
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        return (time.perf_counter() - t0) / inner
    finally:
        gc.enable()


def calibrate(fn: Callable[[], object], target_s: float) -> int:
    """How many calls of *fn* take about *target_s* seconds (at least 1)."""
    inner = 1
    while True:
        took = _batch(fn, inner) * inner
        if took >= target_s / 4 or inner >= 1_000_000:
            return max(1, round(inner * target_s / max(took, 1e-9)))
        inner *= 4


def compare(
    a: Callable[[], object],
    b: Callable[[], object],
    *,
    reps: int,
    target_s: float,
) -> tuple[list[float], list[float], int]:
    """Seconds per call of *a* and *b*, ``reps`` batches each, interleaved; and the batch size."""
    for _ in range(2):  # warm caches, compiled statements, prepared statements
        _batch(a, 20)
        _batch(b, 20)
    inner = min(calibrate(a, target_s), calibrate(b, target_s))  # the slower one sets the pace
    sa: list[float] = []
    sb: list[float] = []
    for i in range(reps):
        if i % 2 == 0:
            sa.append(_batch(a, inner))
            sb.append(_batch(b, inner))
        else:
            sb.append(_batch(b, inner))
            sa.append(_batch(a, inner))
    return sa, sb, inner


def timed_row(
    figure: str,
    name: str,
    a_label: str,
    a: Callable[[], object],
    b_label: str,
    b: Callable[[], object],
    *,
    reps: int,
    target_s: float,
    target: float | None = None,
    limit: float | None = None,
    note: str = "",
) -> Row:
    """Measure *a* against *b* and return the table row (times in microseconds per call)."""
    sa, sb, inner = compare(a, b, reps=reps, target_s=target_s)
    paired = statistics.median(x / y for x, y in zip(sa, sb, strict=True))
    return Row(
        figure=figure,
        name=name,
        a_label=a_label,
        b_label=b_label,
        unit="us",
        a_min=min(sa) * 1e6,
        a_med=statistics.median(sa) * 1e6,
        b_min=min(sb) * 1e6,
        b_med=statistics.median(sb) * 1e6,
        target=target,
        limit=limit,
        note=note,
        extra={"reps": reps, "calls_per_rep": inner, "paired_ratio_median": paired},
    )


def _fmt(v: float) -> str:
    if v >= 1000:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def render(rows: list[Row]) -> str:
    """A plain-text table (also valid Markdown)."""
    head = [
        "fig",
        "comparison (A vs B)",
        "unit",
        "A min",
        "A med",
        "B min",
        "B med",
        "A/B med",
        "A/B min",
        "target",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [
            r.figure,
            f"{r.name}: {r.a_label} vs {r.b_label}" + (f" ({r.note})" if r.note else ""),
            r.unit,
            _fmt(r.a_min),
            _fmt(r.a_med),
            _fmt(r.b_min),
            _fmt(r.b_med),
            f"{r.ratio_med:.3f}",
            f"{r.ratio_min:.3f}",
            r.target_text,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    import os

    import psycopg
    import sqlalchemy

    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "sqlalchemy": sqlalchemy.__version__,
        "psycopg": psycopg.__version__,
    }


def write_json(path: str, rows: list[Row], meta: dict[str, Any]) -> None:
    """Write the rows and the machine description as JSON."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"machine": meta, "rows": [r.as_dict() for r in rows]}, f, indent=2)
        f.write("\n")
