"""The README's FastAPI and Flask apps, as processes, with `tenancy emulator --webhook-url`.

What a developer does by hand: start the emulator, paste its `export` lines, start the app
from the README, remove a site through the emulator's control API, and see the signed
``AppRemoved`` land: the tenant's row in PostgreSQL says ``removed``.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from sqlalchemy import Engine, select

import tenancy
from tenancy.testing.postgres import Database

pytestmark = pytest.mark.postgres

README = Path(__file__).parents[2] / "README.md"
MODELS = """\
from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import tenancy


class Base(DeclarativeBase):
    pass


class Note(tenancy.TenantScoped, Base):
    __tablename__ = "readme_notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(100))
"""


def _readme_app(first_line: str) -> str:
    """The README's code block that starts with *first_line*, verbatim."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    return str(next(block for block in blocks if block.startswith(first_line)))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _process(
    argv: list[str], env: dict[str, str], cwd: Path | None = None, stderr: list[str] | None = None
) -> Iterator[subprocess.Popen[str]]:
    """Run *argv* until the block ends; its stderr is appended to *stderr* then."""
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd
    )
    try:
        yield process
    finally:
        process.terminate()
        try:
            _, err = process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            _, err = process.communicate()
        if stderr is not None:
            stderr.append(err)


def _exports(emulator: subprocess.Popen[str]) -> dict[str, str]:
    assert emulator.stdout is not None
    exported: dict[str, str] = {}
    for line in emulator.stdout:
        if line.startswith("export "):
            name, value = line.removeprefix("export ").rstrip("\n").split("=", 1)
            exported[name] = value
        if line.startswith("# ready"):
            return exported
    raise AssertionError("the emulator stopped before it was ready")


def _wait_until_serving(url: str, app: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if app.poll() is not None:
            raise AssertionError(f"the app stopped: {app.communicate()[1]}")
        try:
            requests.get(url, timeout=2)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise AssertionError("the app did not start in 30 s")


def _status(admin: Engine, instance_id: str) -> str | None:
    with admin.connect() as conn:
        query = select(tenancy.Tenant.status).where(tenancy.Tenant.instance_id == uuid.UUID(instance_id))
        return conn.execute(query).scalar_one_or_none()


@pytest.mark.parametrize("framework", ["fastapi", "flask"])
def test_the_readme_app_receives_a_signed_app_removed_from_the_emulator(
    framework: str, web_database: Database, web_admin: Engine, tmp_path: Path
) -> None:
    """The README's app starts with nothing but the emulator's exports and the database URLs;
    installing and removing a site through the control API reach it as signed webhooks, and
    the tenant's row goes active, then removed."""
    port = _free_port()
    app_url = f"http://127.0.0.1:{port}"
    (tmp_path / "models.py").write_text(MODELS)
    first_line = "from typing import Annotated" if framework == "fastapi" else "from flask import Flask"
    (tmp_path / "app.py").write_text(_readme_app(first_line))
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("WIX_", "DATABASE_URL", "TENANCY_"))}
    base_env["PYTHONUNBUFFERED"] = "1"
    emulator_argv = [sys.executable, "-m", "tenancy", "emulator", "--sites", "1"]
    emulator_argv += ["--webhook-url", f"{app_url}/webhooks/wix"]
    emulator_log: list[str] = []
    with _process(emulator_argv, base_env, stderr=emulator_log) as emulator:
        exported = _exports(emulator)
        assert set(exported) >= {"WIX_API_BASE_URL", "WIX_APP_ID", "WIX_APP_SECRET", "WIX_WEBHOOK_PUBLIC_KEY"}
        app_env = {
            **base_env,
            **exported,
            "DATABASE_URL": web_database.runtime_url,
            "TENANCY_ADMIN_DATABASE_URL": web_database.admin_url,
            "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path]),
        }
        if framework == "fastapi":
            app_argv = [
                sys.executable,
                "-m",
                "uvicorn",
                "app:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ]
        else:
            app_argv = [sys.executable, "-m", "flask", "--app", "app", "run", "--port", str(port)]
        with _process(app_argv, app_env, cwd=tmp_path) as app:
            _wait_until_serving(f"{app_url}/notes", app)
            control = exported["WIX_API_BASE_URL"] + "/_emulator"
            installed = requests.post(control + "/sites", json={}, timeout=30).json()
            iid = installed["instance_id"]
            assert installed["webhook"]["status"] == 200, installed
            assert _status(web_admin, iid) == "active"
            removed = requests.post(f"{control}/sites/{iid}/remove", timeout=30).json()
            assert removed["webhook"] == {
                "event_type": "AppRemoved",
                "instance_id": iid,
                "url": f"{app_url}/webhooks/wix",
                "status": 200,
                "error": None,
            }
            assert _status(web_admin, iid) == "removed"
    assert f"webhook AppRemoved for {iid} -> {app_url}/webhooks/wix: HTTP 200" in emulator_log[0]
