"""The public surface is the contract of DESIGN.md: complete, sorted, one error root."""

from __future__ import annotations

from types import ModuleType

import tenancy
import tenancy.errors


def test_all_is_sorted_and_complete() -> None:
    """__all__ lists every public name of the package, sorted."""
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
