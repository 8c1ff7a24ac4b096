"""The binding key and seal: secret in every printed form, and required on PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Engine, text

import tenancy
from tenancy.postgres.binding import (
    BindingKey,
    KeySource,
    SessionState,
    clean_sql,
    parse_binding_key,
    registration_proof,
    seal,
    session_state,
)

T = uuid.UUID("12345678-1234-4234-8234-123456789abc")
SECRET = bytes(range(32))


def test_the_key_never_shows_its_secret() -> None:
    """repr(), str() and parse errors never contain the key's bytes."""
    key = parse_binding_key(f"7:{SECRET.hex()}")
    assert key == BindingKey("7", SECRET)
    for shown in (repr(key), str(key), repr(KeySource(key, None))):
        assert SECRET.hex() not in shown
    with pytest.raises(tenancy.ConfigurationError, match="TENANCY_BINDING_KEY") as err:
        parse_binding_key(f"seven:{SECRET.hex()}")
    assert SECRET.hex()[:16] not in str(err.value)


def test_seal_and_registration_proof_are_different_hmacs() -> None:
    """A seal never doubles as a registration proof, and both name their key."""
    key = BindingKey("3", SECRET)
    assert seal(key, T).startswith("3.") and registration_proof(key, T).startswith("3.")
    assert seal(key, T) != registration_proof(key, T)
    assert seal(key, T) != seal(BindingKey("3", bytes(32)), T)


@pytest.mark.postgres
def test_without_a_key_tenant_sessions_fail_closed(runtime_engine: Engine) -> None:
    """No binding_key and no admin_engine on PostgreSQL: ConfigurationError naming the variable."""
    with pytest.raises(tenancy.ConfigurationError, match="TENANCY_BINDING_KEY") as err:
        tenancy.TenantSessionFactory(runtime_engine).for_instance(T)
    # An app's migrations are two branches (its own and tenancy's): the hint says `heads`.
    assert "`alembic upgrade heads`" in str(err.value)


@pytest.mark.postgres
def test_a_wrong_key_binds_nothing(runtime_engine: Engine, binding_key: BindingKey) -> None:
    """A process holding a key the database does not have sees no rows (the check returns NULL)."""
    wrong = BindingKey(binding_key.key_id, bytes(32))
    with tenancy.TenantSessionFactory(runtime_engine, binding_key=wrong).for_instance(T) as session:
        assert session.execute(text("SELECT tenancy.current_instance_id()")).scalar() is None
    with tenancy.TenantSessionFactory(runtime_engine, binding_key=binding_key).for_instance(T) as session:
        assert session.execute(text("SELECT tenancy.current_instance_id()")).scalar() == T


@pytest.mark.postgres
def test_an_admin_engine_that_cannot_read_the_key_is_a_configuration_error(runtime_engine: Engine) -> None:
    """admin_engine connected as the runtime role (TENANCY_ADMIN_DATABASE_URL unset): a clear error."""
    sessions = tenancy.TenantSessionFactory(runtime_engine, admin_engine=runtime_engine)
    with pytest.raises(tenancy.ConfigurationError, match="TENANCY_BINDING_KEY") as err:
        sessions.for_instance(T)
    assert "InsufficientPrivilege" in str(err.value)


def test_the_session_checks_answer_is_read_strictly() -> None:
    """The check's answer: the backend to name next time, planted settings, or taint. A bare
    pid is kept only when the libpq connection got that pid itself (no pooler between); any
    other answer (the OUT-column record of the check before revision 0006, garbage, NULL)
    counts as tainted: the connection is discarded, never trusted."""
    assert session_state("4242@1765000000.123456", 4242) == SessionState("4242", None, False)
    assert session_state(b"4242@1765000000.123456", 777) == SessionState(
        "4242@1765000000.123456", None, False
    )
    assert session_state("4242@1765000000.123456", None) == SessionState(
        "4242@1765000000.123456", None, False
    )
    assert session_state("4242", 4242) == SessionState("4242", None, False)
    assert session_state("", 4242) == SessionState(None, None, False)
    assert session_state("!planted:TimeZone, search_path", 1) == SessionState(
        None, "TimeZone, search_path", False
    )
    assert session_state("!tainted", 1).tainted
    for answer in ("(4242@1765000000.1,,t)", "4242@x", " 4242", "ok", None, "!other"):
        assert session_state(answer, 4242).tainted, answer


def test_the_citus_check_inlines_only_a_backend_name() -> None:
    """The Citus check has no parameters: only the two shapes of a backend name reach its text."""
    assert clean_sql("4242") == b"SELECT tenancy.session_state(false, '4242')"
    assert clean_sql("4242@1765000000.5") == b"SELECT tenancy.session_state(false, '4242@1765000000.5')"
    for bad in ("4242'); DROP TABLE x; --", "4242@", "", None):
        assert clean_sql(bad) == b"SELECT tenancy.session_state(false, NULL)"
