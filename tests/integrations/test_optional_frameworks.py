"""Frameworks are optional: `import tenancy` loads none, and a missing one is a clear error."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60
    )


def test_importing_tenancy_imports_no_framework() -> None:
    done = _run(
        """
        import sys, tenancy
        frameworks = {"fastapi", "starlette", "flask", "werkzeug", "uvicorn", "prometheus_client"}
        loaded = frameworks & set(sys.modules)
        assert not loaded, loaded
        """
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("module", "framework", "extra"), [("fastapi", "fastapi", "fastapi"), ("flask", "flask", "flask")]
)
def test_a_missing_framework_names_the_extra_to_install(module: str, framework: str, extra: str) -> None:
    done = _run(
        f"""
        import sys
        sys.modules[{framework!r}] = None  # as if it were not installed
        import tenancy
        try:
            import tenancy.integrations.{module}
        except tenancy.ConfigurationError as exc:
            print(exc)
        """
    )
    assert done.returncode == 0, done.stderr
    assert f"pip install 'wix-tenancy[{extra}]'" in done.stdout


def test_sync_apps_need_no_greenlet() -> None:
    """Both integrations import without greenlet; only asyncio=True asks for wix-tenancy[async]."""
    done = _run(
        """
        import sys
        sys.modules["greenlet"] = None  # installed without the async extra
        import tenancy
        import tenancy.integrations.fastapi as fa, tenancy.integrations.flask
        url = "postgresql://nobody@127.0.0.1:1/none"  # engines connect lazily: never reached
        settings = tenancy.Settings(database_url=url, wix_app_id="app", wix_app_secret="secret")
        try:
            fa.TenancyFastAPI(settings, asyncio=True).start()
        except tenancy.ConfigurationError as exc:
            print(exc)
        """
    )
    assert done.returncode == 0, done.stderr
    assert "pip install 'wix-tenancy[async]'" in done.stdout
