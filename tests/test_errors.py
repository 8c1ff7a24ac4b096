"""Bad arguments to tenancy's public objects raise a tenancy error that names the problem."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, create_engine

import tenancy
from tenancy.lifecycle.purge import purge
from tenancy.tenant_sync.breaker import OutageBreaker
from tenancy.tenant_sync.ratelimit import KeyedRateLimiter, TokenBucket


def _purge(**options: object) -> object:
    engine = create_engine("sqlite://")
    try:
        return purge(engine, **options)  # type: ignore[arg-type]
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("call", "named"),
    [
        (lambda: tenancy.mark_tenant_table(Table("tags", MetaData(), Column("id", Integer))), "instance_id"),
        (lambda: tenancy.WixClient("app", "secret", timeout=0), "timeout"),
        (lambda: TokenBucket(rate=0), "rate"),
        (lambda: KeyedRateLimiter(per_minute=0), "per_minute"),
        (lambda: OutageBreaker(threshold=0), "threshold"),
        (lambda: _purge(batch_size=0), "batch_size"),
        # Not PostgreSQL is configuration, as for grant, check and rotate-key (not LifecycleError).
        (lambda: _purge(dry_run=True), "needs PostgreSQL"),
        (lambda: tenancy.WebhookVerifier("not a key"), "public key"),
    ],
    ids=[
        "mark_tenant_table",
        "WixClient",
        "TokenBucket",
        "KeyedRateLimiter",
        "OutageBreaker",
        "purge-batch",
        "lifecycle-off-postgres",
        "webhook-key",
    ],
)
def test_bad_arguments_raise_configuration_error(call: Callable[[], object], named: str) -> None:
    """``except tenancy.TenancyError`` catches a misconfigured call too, and the message names it."""
    with pytest.raises(tenancy.ConfigurationError, match=named):
        call()
