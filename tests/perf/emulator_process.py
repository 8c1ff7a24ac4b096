"""The Wix emulator in a process of its own, for benchmarks.

A benchmark that serves the emulator from its own process measures the client alone: the
emulator's HTTP handling (a Python ``ThreadingHTTPServer``) does not compete for the
client's GIL, as Wix's servers would not. Counters come from its control API.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path
from types import TracebackType

ROOT = Path(__file__).resolve().parents[2]


class EmulatorProcess:
    """``tenancy emulator --sites N --latency S`` as a child process (a context manager)."""

    def __init__(self, *, sites: int, latency: float = 0.0, seed: int = 0) -> None:
        cmd = [sys.executable, "-m", "tenancy", "emulator", "--sites", str(sites), "--seed", str(seed)]
        cmd += ["--latency", str(latency)]
        self._proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        env: dict[str, str] = {}
        for line in self._proc.stdout:
            if line.startswith("export "):
                name, value = line.removeprefix("export ").strip().split("=", 1)
                env[name] = value
            if "ready" in line:
                break
        self.env = env
        self.base_url = env["WIX_API_BASE_URL"]
        self.app_id = env["WIX_APP_ID"]
        self.app_secret = env["WIX_APP_SECRET"]
        self.instance_ids: list[str] = self._get("/_emulator/sites")["instance_ids"]

    def _get(self, path: str) -> dict[str, object]:
        with urllib.request.urlopen(self.base_url + path, timeout=30) as reply:
            data: dict[str, object] = json.load(reply)
            return data

    @property
    def counts(self) -> dict[str, int]:
        """Requests served per endpoint since the last :meth:`reset_counts`."""
        counts = self._get("/_emulator/stats")["counts"]
        assert isinstance(counts, dict)
        return counts

    def reset_counts(self) -> None:
        """Zero the counters."""
        request = urllib.request.Request(self.base_url + "/_emulator/reset", data=b"", method="POST")
        urllib.request.urlopen(request, timeout=30).close()

    def stop(self) -> None:
        """Terminate the emulator process."""
        self._proc.terminate()
        self._proc.wait(timeout=30)

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
