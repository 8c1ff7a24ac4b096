"""Start-up time of the ``tenancy`` command against ``alembic --help``, in the same run.

Run from the repository root (not part of the test suite; nothing here is timed against a
threshold)::

    .venv/bin/python -m tests.perf.bench_startup                 # 15 runs of each
    .venv/bin/python -m tests.perf.bench_startup --runs 31 --json startup.json

Each command runs ``--runs`` times as a fresh subprocess, interleaved (so a busy moment on a
shared machine hits every command alike); the table shows the median and the quartiles of the
wall time, and the ratio of each median to ``alembic --help``'s (the target for
``tenancy --help`` is at most 1.5). Then ``python -X importtime -c "import tenancy"`` lists the
modules with the largest cumulative import time. The last line is the whole result as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent
COMMANDS: dict[str, list[str]] = {
    "alembic --help": [str(BIN / "alembic"), "--help"],
    "tenancy --help": [str(BIN / "tenancy"), "--help"],
    "tenancy emulator --help": [str(BIN / "tenancy"), "emulator", "--help"],
    "tenancy sync --help": [str(BIN / "tenancy"), "sync", "--help"],
    'python -c "import tenancy"': [sys.executable, "-c", "import tenancy"],
    "python -c pass": [sys.executable, "-c", "pass"],
}
TARGET = 1.5  # tenancy --help at most this many times alembic --help


def _wall(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def measure(runs: int) -> dict[str, list[float]]:
    """Wall seconds of every command, ``runs`` times each, interleaved (after one warm-up)."""
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for argv in COMMANDS.values():
        _wall(argv)  # warm the page cache and the .pyc files
    for _ in range(runs):
        for name, argv in COMMANDS.items():
            times[name].append(_wall(argv))
    return times


def import_times(top: int) -> list[tuple[str, float]]:
    """The *top* modules by cumulative import time of ``import tenancy`` (seconds)."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "0"}
    answer = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import tenancy"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    rows: list[tuple[str, float]] = []
    for line in answer.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
        rows.append((name.strip(), int(cumulative) / 1e6))
    rows.sort(key=lambda row: row[1], reverse=True)
    return rows[:top]


def main(argv: list[str] | None = None) -> int:
    """Measure, print the table, the import-time top list and the JSON line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=15, help="runs of each command (default: %(default)s)")
    parser.add_argument("--top", type=int, default=15, help="modules listed from -X importtime")
    parser.add_argument("--json", type=Path, help="also write the JSON result to this file")
    args = parser.parse_args(argv)
    times = measure(args.runs)
    baseline = statistics.median(times["alembic --help"])
    result: dict[str, object] = {"runs": args.runs, "target_ratio": TARGET, "commands": {}}
    print(f"{'command':<30} {'median s':>9} {'q1 s':>7} {'q3 s':>7} {'x alembic':>10}")
    for name, values in times.items():
        median = statistics.median(values)
        q1, _, q3 = statistics.quantiles(values, n=4)
        ratio = median / baseline
        print(f"{name:<30} {median:>9.3f} {q1:>7.3f} {q3:>7.3f} {ratio:>10.2f}")
        result["commands"][name] = {"median_s": median, "q1_s": q1, "q3_s": q3, "ratio": ratio}  # type: ignore[index]
    ratio = statistics.median(times["tenancy --help"]) / baseline
    verdict = "meets" if ratio <= TARGET else "misses"
    print(f"\ntenancy --help is {ratio:.2f}x alembic --help: {verdict} the target of {TARGET}x")
    top = import_times(args.top)
    print('\npython -X importtime -c "import tenancy": largest cumulative times')
    for name, seconds in top:
        print(f"  {seconds * 1000:8.1f} ms  {name}")
    result["import_tenancy_top"] = [{"module": name, "cumulative_s": seconds} for name, seconds in top]
    result["tenancy_help_ratio"] = ratio
    line = json.dumps(result)
    print(line)
    if args.json is not None:
        args.json.write_text(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
