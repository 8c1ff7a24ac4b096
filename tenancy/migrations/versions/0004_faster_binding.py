"""Faster binding: the session check (planted role-level settings, SQL-made prepared
statements, LISTEN channels, session advisory locks; with ``true``, the session reset first) as
a function, ``tenancy.session_check(boolean)``, whose plans PostgreSQL caches per backend,
instead of catalog subqueries planned again in every transaction's unnamed binding statement.
Frozen SQL text (no tenancy imports): editing ``tenancy/postgres/binding.py`` later does not
rewrite this revision. Run ``tenancy grant`` afterwards: the runtime role needs EXECUTE on it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SESSION_CHECK = r"""
CREATE OR REPLACE FUNCTION tenancy.session_check(
  p_reset pg_catalog.bool DEFAULT false, OUT planted pg_catalog.text, OUT clean pg_catalog.bool)
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
  clean := NOT EXISTS (SELECT FROM pg_catalog.pg_prepared_statements p WHERE p.from_sql)
           AND NOT EXISTS (SELECT FROM pg_catalog.pg_listening_channels());
END
$tenancy$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE SCHEMA IF NOT EXISTS tenancy")
    op.execute(SESSION_CHECK)
    op.execute("REVOKE ALL ON FUNCTION tenancy.session_check(boolean) FROM PUBLIC")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP FUNCTION IF EXISTS tenancy.session_check(boolean)")
