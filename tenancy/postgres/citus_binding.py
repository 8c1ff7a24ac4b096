"""The sealed tenant binding on Citus: the key and the check on every node, and a seal that
reaches the shards.

Citus forwards to the workers only ``SET`` statements (``SET LOCAL`` with
``citus.propagate_set_commands = 'local'``); ``set_config()`` with bound parameters, the form
:mod:`tenancy.postgres.binding` uses to keep the seal out of query text, never reaches a shard, and
RLS there then sees no tenant. ``SET`` takes no parameters, so on Citus the seal *is* in the
query text: other backends of the runtime role could read it in ``pg_stat_activity`` while the
``SET LOCAL tenancy.seal`` statement runs (the connection check that follows it in the same
pipeline is then the backend's last statement), and ``pg_stat_statements`` keeps utility
statements' text on PostgreSQL 15. The seal is bound to the sending backend and a short time
window::

    seal = <key_id>.<window>.<hex HMAC-SHA256(key, "<uuid>|<gpid>|<window>")>

``gpid`` is Citus's global process id of the coordinator backend (``citus_backend_gpid()``;
each worker connection a backend opens reports the same value), ``window`` the number of
:data:`WINDOW_SECONDS` periods since the epoch, accepted within :data:`WINDOW_SLACK` windows
of the transaction's start. The gpid binding is no boundary: Citus takes a backend's gpid from
its ``application_name``, which any role may ``SET``, so a seal read from query text replays on
any backend within the window (``tests/citus/test_seal_gpid_claim.py``, a strict xfail). What
keeps the seal safe is that no other backend can read it: ``track_activities = off`` for the
runtime role (and ``pg_stat_statements.track_utility`` off where installed), which ``tenancy
check`` requires on Citus (README: Known limits).

Everything else is :mod:`tenancy.postgres.binding`'s: the key table (made a reference table here,
so every node holds it, still readable only by its owner), the function name, the settings.
The policy on distributed tables calls the function directly (Citus refuses sub-selects in
policies of distributed tables): once per row on a scan, once per statement on an index
lookup by ``instance_id`` (what every ORM query is).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
import uuid

from sqlalchemy import Connection, text

from tenancy.postgres.binding import CLEAN_SQL, FUNCTION, SCHEMA, SEAL_SETTING, BindingKey, clean_sql
from tenancy.postgres.isolation import SETTING_NAME

__all__ = [
    "CLEAN_SQL",
    "WINDOW_SECONDS",
    "WINDOW_SLACK",
    "binding_commands",
    "prepare_binding",
    "seal",
    "verify_function_sql",
]

WINDOW_SECONDS = 60
WINDOW_SLACK = 2  # windows either side: client and server clocks may differ by about a minute
_CANONICAL = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def seal(key: BindingKey, tenant: uuid.UUID, gpid: int, *, now: float | None = None) -> str:
    """*tenant*'s seal for the backend *gpid*, valid for a few minutes."""
    window = int((time.time() if now is None else now) // WINDOW_SECONDS)
    message = f"{tenant}|{gpid}|{window}".encode("ascii")
    return f"{key.key_id}.{window}.{hmac.new(key.secret, message, hashlib.sha256).hexdigest()}"


def binding_commands(
    tenant: uuid.UUID, tenant_seal: str, backend: str | None = None
) -> tuple[bytes, bytes, bytes]:
    """The two ``SET LOCAL`` statements that carry the binding to the shards, then the session
    check (its answer: :func:`~tenancy.postgres.binding.session_state`; it also releases session
    advisory locks); *backend*: the one already found clean of role settings
    (:func:`~tenancy.postgres.binding.clean_sql`).

    Both values are checked against their exact shape before they are put into SQL text.
    """
    text_id = str(tenant)
    if not isinstance(tenant, uuid.UUID) or not _CANONICAL.fullmatch(text_id):
        raise ValueError("the tenant is inlined only as a canonical uuid.UUID")
    if not re.fullmatch(r"[0-9]{1,10}\.[0-9]{1,12}\.[0-9a-f]{64}", tenant_seal):
        raise ValueError("not a Citus seal")
    return (
        f"SET LOCAL {SETTING_NAME} = '{text_id}'".encode("ascii"),
        f"SET LOCAL {SEAL_SETTING} = '{tenant_seal}'".encode("ascii"),
        clean_sql(backend),
    )


def verify_function_sql(keys_shard: str) -> str:
    """``tenancy.current_instance_id()`` for Citus: the seal names this backend's gpid.

    It reads the key table's shard (*keys_shard*, the same name on every node): on a worker,
    reading the reference table itself from inside a shard query would be a nested
    distributed query, which Citus refuses.
    """
    return f"""
CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS uuid
LANGUAGE plpgsql STABLE PARALLEL SAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $tenancy$
DECLARE
  v_id text := current_setting('{SETTING_NAME}', true);
  v_seal text := current_setting('{SEAL_SETTING}', true);
  v_window bigint;
  v_ipad bytea;
  v_opad bytea;
BEGIN
  IF v_id IS NULL OR v_seal IS NULL OR v_seal !~ '^[0-9]{{1,10}}[.][0-9]{{1,12}}[.][0-9a-f]{{64}}$' THEN
    RETURN NULL;
  END IF;
  v_window := split_part(v_seal, '.', 2)::bigint;
  IF abs(v_window - floor(extract(epoch FROM transaction_timestamp()) / {WINDOW_SECONDS}))
     > {WINDOW_SLACK} THEN
    RETURN NULL;
  END IF;
  SELECT k.ipad, k.opad INTO v_ipad, v_opad FROM {keys_shard} k
   WHERE k.key_id::text = split_part(v_seal, '.', 1) AND k.retired_at IS NULL;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  IF encode(sha256(v_opad || sha256(v_ipad || convert_to(
       v_id || '|' || pg_catalog.citus_backend_gpid()::text || '|' || v_window::text, 'UTF8'))), 'hex')
     = split_part(v_seal, '.', 3) THEN
    RETURN v_id::uuid;
  END IF;
  RETURN NULL;
END
$tenancy$
"""


def prepare_binding(connection: Connection) -> None:
    """Make the key table a reference table and install the Citus check (owner, on Citus).

    Citus propagates the function to every node; idempotent.
    """
    table = f"{SCHEMA}.binding_keys"
    replicated = connection.execute(
        text("SELECT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = CAST(:t AS regclass))"),
        {"t": table},
    ).scalar_one()
    if not replicated:
        connection.execute(text("SELECT create_reference_table(CAST(:t AS regclass))"), {"t": table})
    shard = connection.execute(
        text(
            "SELECT shard_name(logicalrelid, shardid) FROM pg_dist_shard"
            " WHERE logicalrelid = CAST(:t AS regclass)"
        ),
        {"t": table},
    ).scalar_one()
    if not re.fullmatch(r"tenancy\.binding_keys_[0-9]+", shard):
        raise RuntimeError(f"unexpected shard name for {table}: {shard!r}")
    connection.execute(text(verify_function_sql(shard)))
