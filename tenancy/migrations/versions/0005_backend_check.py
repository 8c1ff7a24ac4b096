"""Role settings checked once per backend: ``tenancy.session_check(boolean, text)``.

The session check (0004) looked for planted role-level settings in every tenant transaction
(~40 us of a ~1 ms transaction). A role setting is read only when a backend starts, so the
check now also returns the backend it ran on (pid and start time) and skips that part while
the caller names the same backend again. The one-argument function is dropped (both would make
``session_check(true)`` ambiguous); the new one takes the same call forms (``session_check()``,
``session_check(true)``) and returns the same ``planted`` and ``clean`` columns, after a new
``backend`` column. Roles that could execute the old function are granted the new one. Frozen
SQL text (no tenancy imports).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op
from sqlalchemy import text

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GRANTEES = """
SELECT pg_catalog.quote_ident(r.rolname)
  FROM pg_catalog.pg_proc p CROSS JOIN pg_catalog.aclexplode(p.proacl) a
  JOIN pg_catalog.pg_roles r ON r.oid = a.grantee
 WHERE p.oid = pg_catalog.to_regprocedure(:f) AND a.grantee <> p.proowner
   AND a.privilege_type = 'EXECUTE'
 ORDER BY 1
"""

SESSION_CHECK = r"""
CREATE OR REPLACE FUNCTION tenancy.session_check(
  p_reset pg_catalog.bool DEFAULT false, p_backend pg_catalog.text DEFAULT NULL,
  OUT backend pg_catalog.text, OUT planted pg_catalog.text, OUT clean pg_catalog.bool)
LANGUAGE plpgsql VOLATILE
AS $tenancy$
BEGIN
  IF p_reset THEN
    EXECUTE 'RESET ALL';
    EXECUTE 'RESET ROLE';
    EXECUTE 'CLOSE ALL';
    EXECUTE 'DISCARD SEQUENCES';
  END IF;
  PERFORM pg_catalog.pg_advisory_unlock_all();
  SELECT pg_catalog.pg_backend_pid()::pg_catalog.text OPERATOR(pg_catalog.||) '@'
         OPERATOR(pg_catalog.||)
         pg_catalog.date_part('epoch', a.backend_start)::pg_catalog.numeric::pg_catalog.text
    INTO backend FROM pg_catalog.pg_stat_get_activity(pg_catalog.pg_backend_pid()) a;
  IF backend IS NULL OR p_backend IS NULL OR p_backend OPERATOR(pg_catalog.<>) backend THEN

  SELECT pg_catalog.string_agg(DISTINCT pg_catalog.split_part(c, '=', 1), ', ') INTO planted
    FROM pg_catalog.pg_db_role_setting s, pg_catalog.unnest(s.setconfig) c
   WHERE s.setrole OPERATOR(pg_catalog.=)
         pg_catalog.to_regrole(pg_catalog.quote_ident(session_user::pg_catalog.text))::pg_catalog.oid
     AND s.setdatabase OPERATOR(pg_catalog.=) ANY (ARRAY[0::pg_catalog.oid, (SELECT d.oid
         FROM pg_catalog.pg_database d WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database())])
     AND NOT ((pg_catalog.split_part(c, '=', 1) OPERATOR(pg_catalog.=) ANY (ARRAY['lock_timeout',
              'statement_timeout', 'idle_in_transaction_session_timeout'])
              AND pg_catalog.split_part(c, '=', 2) OPERATOR(pg_catalog.!~) '^[0.]*[a-z]*$')
          OR c OPERATOR(pg_catalog.=) 'citus.propagate_set_commands=local'
          OR c OPERATOR(pg_catalog.=) ANY (ARRAY['track_activities=off',
             'pg_stat_statements.track_utility=off']));
  END IF;
  clean := NOT EXISTS (SELECT FROM pg_catalog.pg_prepared_statements p WHERE p.from_sql)
           AND NOT EXISTS (SELECT FROM pg_catalog.pg_listening_channels());
END
$tenancy$
"""


def _move(old: str, new: str, create: str) -> None:
    grantees = op.get_bind().execute(text(GRANTEES), {"f": old}).scalars().all()
    op.execute(f"DROP FUNCTION IF EXISTS {old}")
    op.execute(create)
    op.execute(f"REVOKE ALL ON FUNCTION {new} FROM PUBLIC")
    for grantee in grantees:
        op.execute(f"GRANT EXECUTE ON FUNCTION {new} TO {grantee}")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _move("tenancy.session_check(boolean)", "tenancy.session_check(boolean, text)", SESSION_CHECK)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    from importlib import import_module

    previous = import_module("tenancy.migrations.versions.0004_faster_binding")
    _move("tenancy.session_check(boolean, text)", "tenancy.session_check(boolean)", previous.SESSION_CHECK)
