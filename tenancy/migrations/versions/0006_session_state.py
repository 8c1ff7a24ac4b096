"""The binding as one call: ``tenancy.session_state(p_reset, p_backend, p_instance_id, p_seal)
RETURNS text``.

``tenancy.session_check`` (0005) returned ``backend``, ``planted`` and ``clean`` as OUT columns,
called in the binding statement's FROM list beside two ``set_config()`` calls: a set-returning
call that builds a tuple descriptor and a tuplestore in every transaction, in an unnamed
statement parsed and planned every time (~170k server instructions of a point transaction's
~690k, callgrind). ``session_state`` makes the two settings itself, after its checks, and
returns one text value (the backend it ran on, ``!planted:<names>`` or ``!tainted``). It also
takes a bare pid as ``p_backend``: the caller passes it when its libpq connection is that
backend's own (no pooler), and the comparison skips ``pg_stat_get_activity``, which copies every
backend's status (~80k instructions). Roles that could execute ``session_check(boolean, text)``
are granted ``session_state``; the old function is dropped. Frozen SQL text (no tenancy imports).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import import_module
from types import ModuleType

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SESSION_STATE = r"""CREATE OR REPLACE FUNCTION tenancy.session_state(
  p_reset pg_catalog.bool DEFAULT false, p_backend pg_catalog.text DEFAULT NULL,
  p_instance_id pg_catalog.text DEFAULT NULL, p_seal pg_catalog.text DEFAULT NULL)
RETURNS pg_catalog.text
LANGUAGE plpgsql VOLATILE
AS $tenancy$
DECLARE
  v_pid pg_catalog.text := pg_catalog.pg_backend_pid()::pg_catalog.text;
  v_backend pg_catalog.text;
  planted pg_catalog.text;
  v_set pg_catalog.text;
BEGIN
  IF p_reset THEN
    EXECUTE 'RESET ALL';
    EXECUTE 'RESET ROLE';
    EXECUTE 'CLOSE ALL';
    EXECUTE 'DISCARD SEQUENCES';
  END IF;
  PERFORM pg_catalog.pg_advisory_unlock_all();
  IF p_backend OPERATOR(pg_catalog.=) v_pid THEN
    v_backend := v_pid;
  ELSE
    SELECT v_pid OPERATOR(pg_catalog.||) '@' OPERATOR(pg_catalog.||)
           pg_catalog.date_part('epoch', a.backend_start)::pg_catalog.numeric::pg_catalog.text
      INTO v_backend FROM pg_catalog.pg_stat_get_activity(pg_catalog.pg_backend_pid()) a;
    IF v_backend IS NULL OR p_backend IS NULL OR p_backend OPERATOR(pg_catalog.<>) v_backend THEN

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
      IF planted IS NOT NULL THEN
        RETURN '!planted:' OPERATOR(pg_catalog.||) planted;
      END IF;
    END IF;
  END IF;
  IF EXISTS (SELECT FROM pg_catalog.pg_prepared_statements p WHERE p.from_sql)
     OR EXISTS (SELECT FROM pg_catalog.pg_listening_channels()) THEN
    RETURN '!tainted';
  END IF;
  IF p_instance_id IS NOT NULL THEN
    v_set := pg_catalog.set_config('tenancy.instance_id', p_instance_id, true);
  END IF;
  IF p_seal IS NOT NULL THEN
    v_set := pg_catalog.set_config('tenancy.seal', p_seal, true);
  END IF;
  RETURN COALESCE(v_backend, '');
END
$tenancy$
"""


def _previous() -> ModuleType:
    # 0005 (frozen too): its SESSION_CHECK, and its _move, which reads the old function's
    # grantees, drops it, creates the new one and grants it to them.
    return import_module("tenancy.migrations.versions.0005_backend_check")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _previous()._move(
        "tenancy.session_check(boolean, text)",
        "tenancy.session_state(boolean, text, text, text)",
        SESSION_STATE,
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    previous = _previous()
    old, new = "tenancy.session_state(boolean, text, text, text)", "tenancy.session_check(boolean, text)"
    previous._move(old, new, previous.SESSION_CHECK)
