"""A stolen Citus seal replayed by SQL that claims the victim backend's gpid (a known limit).

Kept next to the Citus fixtures (``citus_db``): ``tests/isolation`` has no Citus cluster.
"""

from __future__ import annotations

import pytest

from tenancy.postgres.citus_binding import seal
from tests.citus.conftest import B, CitusDb, binding_key
from tests.citus.test_sealed import _bind, _notes, _runtime

pytestmark = pytest.mark.usefixtures("sessions")


@pytest.mark.xfail(
    strict=True,
    reason="Citus takes a backend's gpid from application_name, which any role may SET; the "
    "workers see only what the coordinator backend claims, so the seal's gpid binding is no "
    "boundary (README Known limits: on Citus the seal must stay unreadable: track_activities "
    "off, which tenancy check requires)",
)
@pytest.mark.parametrize("prefix", ["citus_internal", "citus_rebalancer", "citus_run_command"])
def test_a_stolen_seal_does_not_verify_on_a_backend_that_claims_the_victims_gpid(
    citus_db: CitusDb, prefix: str
) -> None:
    """The Citus seal is bound to ``citus_backend_gpid()``, but Citus takes a backend's gpid from
    its ``application_name`` (``citus_internal gpid=N``), which any role may SET: SQL in A's
    session that claims B's backend's gpid must still not make B's stolen seal verify."""
    key = binding_key(citus_db)
    with _runtime(citus_db) as victim, _runtime(citus_db) as attacker:
        gpid = victim.execute("SELECT citus_backend_gpid()").fetchone()[0]  # type: ignore[index]
        victim.rollback()
        stolen = seal(key, B, gpid)
        attacker.execute(f"SET application_name = '{prefix} gpid={gpid}'")
        attacker.commit()
        _bind(attacker, B, stolen)
        assert _notes(attacker) == 0, "a seal stolen from B's backend verified on A's backend"
        attacker.rollback()
        _bind(victim, B, stolen)
        assert _notes(victim) == 2  # and on B's own backend it still does
