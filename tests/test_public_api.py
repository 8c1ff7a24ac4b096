"""The public surface is the contract of DESIGN.md: complete, sorted, one error root."""

from __future__ import annotations

import subprocess
import sys
from types import ModuleType

import pytest

import tenancy
import tenancy.errors


def test_all_is_sorted_and_complete() -> None:
    """__all__ lists every public name of the package, sorted (and each of them resolves)."""
    for name in tenancy.__all__:  # names load on first use; resolve them all first
        assert getattr(tenancy, name) is not None, name
    assert set(dir(tenancy)) >= set(tenancy.__all__)
    public = {
        name
        for name, value in vars(tenancy).items()
        if not name.startswith("_") and not isinstance(value, ModuleType) and name != "annotations"
    }
    assert tenancy.__all__ == sorted(tenancy.__all__)
    assert set(tenancy.__all__) == public


def test_every_error_derives_from_the_root() -> None:
    """Every exception class tenancy exports is a TenancyError (the warning aside)."""
    for name in tenancy.errors.__all__:
        cls = getattr(tenancy, name)
        if name != "TenancyWarning":
            assert issubclass(cls, tenancy.TenancyError), name
            assert cls.__module__ == "tenancy"


def test_wix_errors_carry_status_and_request_id() -> None:
    """WixError subclasses keep the HTTP status and Wix's request id."""
    err = tenancy.WixRateLimited("slow down", status=429, request_id="r-1")
    assert isinstance(err, tenancy.WixError)
    assert (err.status, err.request_id) == (429, "r-1")


def test_import_tenancy_loads_neither_the_orm_nor_http_nor_crypto() -> None:
    """`import tenancy` (and `tenancy --help`) stay fast: SQLAlchemy's ORM, requests, psycopg
    and cryptography load only when a name that needs them is used."""
    heavy = ("sqlalchemy.orm", "requests", "psycopg", "cryptography", "jwt")
    probe = (
        "import sys, tenancy\n"
        "from tenancy.commands.main import main\n"
        f"loaded = [m for m in {heavy!r} if m in sys.modules]\n"
        "tenancy.Settings\n"
        "print(','.join(loaded))\n"
    )
    answer = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert answer.stdout.strip() == ""
    for argv in (["--help"], ["emulator", "--help"]):
        code = (
            "import sys\nfrom tenancy.commands.main import main\n"
            f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
            f"print('LOADED', [m for m in {heavy!r} if m in sys.modules])"
        )
        answer = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        assert answer.stdout.strip().splitlines()[-1] == "LOADED []", (argv, answer.stdout[-300:])


def test_a_lazy_name_is_the_defining_modules_object() -> None:
    """tenancy.X is the very object its module defines (isinstance and identity hold)."""
    from tenancy.tenants.model import Tenant
    from tenancy.wix.client import WixClient

    assert tenancy.Tenant is Tenant and tenancy.WixClient is WixClient
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        tenancy.nope  # noqa: B018


def test_tenancy_base_holds_the_tenants_table_in_a_fresh_process() -> None:
    """A model of yours may reference ``tenants.instance_id`` right after ``import tenancy``."""
    probe = (
        "import tenancy, sqlalchemy as sa\n"
        "class Note(tenancy.TenantScoped, tenancy.Base):\n"
        "    __tablename__ = 'notes'\n"
        "    id = sa.orm.mapped_column(sa.Integer, primary_key=True)\n"
        "    __table_args__ = (sa.ForeignKeyConstraint(['instance_id'], ['tenants.instance_id']),)\n"
        "sa.orm.configure_mappers()\n"
        "print(sorted(tenancy.Base.metadata.tables))\n"
    )
    answer = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert answer.stdout.split() == ["['notes',", "'tenants']"]


def test_every_command_is_listed_under_its_own_name() -> None:
    """`tenancy --help` lists the commands without importing them: every command module of the
    package is in that list, under its own name."""
    import importlib
    from pathlib import Path

    import tenancy.commands
    from tenancy.commands.main import SUMMARIES

    folder = Path(tenancy.commands.__file__).parent
    modules = {f"tenancy.commands.{p.stem}" for p in folder.glob("*.py")}
    with_a_name = {m for m in modules if hasattr(importlib.import_module(m), "NAME")}
    assert sorted(module for module, _ in SUMMARIES.values()) == sorted(with_a_name)
    for name, (module, _) in SUMMARIES.items():
        assert name == importlib.import_module(module).NAME
