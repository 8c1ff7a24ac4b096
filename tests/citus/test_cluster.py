"""The cluster the Citus tests run on: a coordinator and two active workers."""

from __future__ import annotations

import psycopg

from tests.citus.cluster import Cluster


def test_the_coordinator_has_two_workers(citus: Cluster) -> None:
    with psycopg.connect(citus.superuser_url) as conn:
        workers = conn.execute("SELECT count(*) FROM citus_get_active_worker_nodes()").fetchone()
        assert workers == (2,)
        version = conn.execute("SELECT citus_version()").fetchone()
        assert version is not None and version[0].startswith("Citus ")
