"""A new user's own app, built from the wheel exactly as the README's "Your own app" section says.

The README's blocks are the script: its SQL creates the two roles (renamed so the run is
unique on the server), its files are written as shown, and its shell lines run one by one in a
fresh virtualenv that has the built wheel (no extras) and pytest, nothing from this checkout.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from tenancy.testing.postgres import server_url
from tests.conftest import ROOT

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

FENCE = re.compile(r"```(\w+)\n(.*?)```", re.S)


def readme_section(title: str) -> list[tuple[str, str]]:
    """The fenced blocks (language, text) of one ``## title`` section of the README."""
    text = (ROOT / "README.md").read_text()
    start = text.index(f"## {title}\n")
    end = text.index("\n## ", start + 1)
    return FENCE.findall(text[start:end])


def _files(blocks: list[tuple[str, str]]) -> dict[str, str]:
    """Blocks whose first line names a file (``# models.py``): path -> content."""
    found = {}
    for _, body in blocks:
        first, _, rest = body.partition("\n")
        if first.startswith("# ") and "." in first and " " not in first[2:]:
            found[first[2:]] = rest
    return found


def _run(
    argv: list[str], cwd: Path, env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, (
        f"{shlex.join(argv)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    )
    return result


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the wheel built from this checkout (no extras) and pytest."""
    base = tmp_path_factory.mktemp("user-venv")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    _run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(base / "dist"), str(ROOT)],
        base,
        env,
    )
    (wheel,) = (base / "dist").glob("wix_tenancy-*.whl")
    _run([sys.executable, "-m", "venv", str(base / "venv")], base, env)
    _run([str(base / "venv/bin/pip"), "install", "--quiet", str(wheel), "pytest"], base, env)
    # No extras: SQLAlchemy 2.1 brings no greenlet, so `import tenancy` must not need it.
    probe = [
        str(base / "venv/bin/python"),
        "-c",
        "import importlib.util; print(importlib.util.find_spec('greenlet'))",
    ]
    assert _run(probe, base, env).stdout.strip() == "None"
    return base / "venv"


@pytest.fixture
def roles() -> Iterator[dict[str, str]]:
    """The README's SQL with unique names, run as the superuser; dropped afterwards."""
    suffix = uuid.uuid4().hex[:8]
    names = {
        "tenancy_owner": f"nu_owner_{suffix}",
        "tenancy_app": f"nu_app_{suffix}",
        "app": f"nu_db_{suffix}",
    }
    (script,) = [body for lang, body in readme_section("Your own app") if lang == "sql"]
    root = server_url()
    conn = psycopg.connect(root, autocommit=True)
    try:
        for line in script.splitlines():
            statement = re.sub(r"\s*--.*$", "", line).strip()
            for old, new in names.items():
                statement = re.sub(rf"\b{old}\b", new, statement)
            if statement.startswith("\\c "):
                conn.close()
                conn = psycopg.connect(
                    make_url(root).set(database=statement.split()[1]).render_as_string(False)
                )
                conn.autocommit = True
            elif statement:
                conn.execute(statement.rstrip(";").encode())
        conn.close()
        yield names
    finally:
        conn.close()
        with psycopg.connect(root, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(names["app"]))
            )
            for role in (names["tenancy_app"], names["tenancy_owner"]):
                admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_a_new_users_app_from_the_readme(venv: Path, roles: dict[str, str], tmp_path: Path) -> None:
    """Own models with a composite FK, alembic init + the README's env.py, autogenerate, upgrade on
    PostgreSQL as the README's owner role, tenancy grant, tenancy check, and the pytest plugin on
    the project's models: each step exits 0 and does what the README says."""
    blocks = readme_section("Your own app")
    project = tmp_path / "app"
    files = _files(blocks)
    assert set(files) == {"models.py", "migrations/env.py", "pyproject.toml", "tests/test_isolation.py"}
    for name in ("models.py", "pyproject.toml", "tests/test_isolation.py"):
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(files[name])

    server = make_url(server_url())
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_URL", "TENANCY_", "WIX_", "PYTHON"))
    }
    env.update(
        PATH=f"{venv / 'bin'}:{env.get('PATH', '')}", VIRTUAL_ENV=str(venv), TENANCY_TEST_PG_URL=server_url()
    )
    (ini_lines,) = [body for lang, body in blocks if lang == "ini"]
    # The first block installs (done above, from the wheel); the others run in the project, in order.
    shell_blocks = [body for lang, body in blocks if lang == "sh"]
    assert "pip install" in shell_blocks[0]
    commands = [line.strip() for block in shell_blocks[1:] for line in block.splitlines() if line.strip()]
    assert commands[0].startswith("export ") and "alembic init migrations" in commands
    assert commands[-1] == "pytest"
    outputs: dict[str, subprocess.CompletedProcess[str]] = {}
    for line in commands:
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            for old, new in roles.items():
                value = re.sub(rf"\b{old}\b", new, value)
            env[name] = value.replace("@localhost/", f"@{server.host}:{server.port}/")
            continue
        argv = shlex.split(line)
        outputs[line] = _run([str(venv / "bin" / argv[0]), *argv[1:]], project, env)
        if line == "alembic init migrations":
            (project / "migrations/env.py").write_text(files["migrations/env.py"])
            # The README's alembic.ini lines replace `path_separator = os` in the [alembic] section.
            ini = project / "alembic.ini"
            stock = ini.read_text()
            assert stock.count("\npath_separator = os\n") == 1
            ini.write_text(stock.replace("\npath_separator = os\n", f"\n{ini_lines}", 1))

    (revision,) = (project / "migrations/versions").glob("*.py")
    assert "tenancy:migrations/versions" in (project / "alembic.ini").read_text()
    source = revision.read_text()
    assert "down_revision: Union[str, Sequence[str], None] = None" in source  # a branch of the app's own
    assert (
        "op.enable_tenant_isolation('notes')" in source and "op.enable_tenant_isolation('comments')" in source
    )
    assert "['notes.instance_id', 'notes.id']" in source  # the composite foreign key
    assert "'tenants'" not in source  # left to tenancy's own revisions
    app, owner = roles["tenancy_app"], roles["tenancy_owner"]
    assert f"granted {app} what tenant sessions need" in outputs["tenancy grant"].stdout
    assert outputs["tenancy check"].stdout.startswith(f"ok: runtime role '{app}'")
    assert re.search(r"\b2 passed\b", outputs["pytest"].stdout), outputs["pytest"].stdout
    assert not list(project.rglob("*.db")), "something migrated a SQLite file instead of PostgreSQL"

    admin = make_url(env["TENANCY_ADMIN_DATABASE_URL"]).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(admin) as conn:
        heads = {row[0] for row in conn.execute("SELECT version_num FROM alembic_version")}
        assert revision.stem.split("_")[0] in heads and len(heads) == 2  # the app's head and tenancy's
        owners = dict(conn.execute("SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'public'"))
        assert owners == {t: owner for t in ("alembic_version", "tenants", "notes", "comments")}
