"""The sealed tenant binding: what the database trusts as "the current tenant".

A tenant transaction carries two transaction-local settings, ``tenancy.instance_id`` (the
canonical lowercase UUID) and ``tenancy.seal`` (``<key_id>.<hex HMAC-SHA256 of that text>``
under a random *binding key*). The policy on every tenant table compares ``instance_id`` with
``(SELECT tenancy.current_instance_id())``: a ``SECURITY DEFINER`` function owned by the
schema's owner that recomputes the HMAC with a key the runtime role cannot read and returns
the UUID only when the seal verifies (else NULL: zero rows, rejected writes). SQL injected
into a tenant session can set the settings, but cannot compute another tenant's seal.

The HMAC is built from PostgreSQL's built-in ``sha256()`` with the pads precomputed in the key
table (no extension needed, so Citus workers and managed servers need nothing installed);
pgcrypto's C ``hmac()`` measured only about 0.4 µs faster per statement.

This module is the one place that knows the binding's wire form (:data:`BIND_SQL`,
:func:`bind_parameters`): a transport that cannot use ``set_config`` (Citus forwards only
``SET`` to its workers) replaces those two and nothing else.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Connection, text

from tenancy import lru
from tenancy.errors import ConfigurationError
from tenancy.settings import BINDING_KEY_PATTERN

__all__ = [
    "BIND_RESET_SQL",
    "BIND_SQL",
    "CHECK_FUNCTION",
    "CHECK_SIGNATURE",
    "CLEAN_SQL",
    "ENV_VAR",
    "FUNCTION",
    "OLD_CHECK_SIGNATURES",
    "PLANTED_SQL",
    "REGISTER_FUNCTION",
    "RESET_SQL",
    "SCHEMA",
    "SEAL_SETTING",
    "TAINTED",
    "TENANT_REMOVED_SQLSTATE",
    "BindingKey",
    "KeySource",
    "SessionState",
    "bind_parameters",
    "binding_objects_sql",
    "clean_sql",
    "ensure_binding_objects",
    "new_key",
    "newest_key",
    "parse_binding_key",
    "planted_message",
    "registration_proof",
    "seal",
    "session_state",
]

SCHEMA = "tenancy"
FUNCTION = f"{SCHEMA}.current_instance_id"
REGISTER_FUNCTION = f"{SCHEMA}.register_tenant"
SEAL_SETTING = "tenancy.seal"
ENV_VAR = "TENANCY_BINDING_KEY"
_REGISTER_PREFIX = "tenancy.register:"
SEAL_CACHE_SIZE = 10_000  # tenants whose seal a KeySource keeps (least recently used dropped)

# Session state a transaction can leave on a pooled connection, reset before every tenant
# transaction (tenancy/postgres/psycopg_begin.py sends it in the BEGIN pipeline, in a transaction of
# its own that commits before the tenant's BEGIN: so the BEGIN takes the reset
# default_transaction_* values, and a later ROLLBACK cannot undo the reset). RESET ALL resets
# every setting to its connect-time value (connect options, ALTER ROLE/DATABASE ... SET) but
# skips `role` (GUC_NO_RESET_ALL): RESET ROLE. CLOSE ALL closes WITH HOLD cursors; DISCARD
# SEQUENCES forgets lastval()/currval(). None of them is refused on a hot standby.
RESET_SQL: tuple[str, ...] = ("RESET ALL", "RESET ROLE", "CLOSE ALL", "DISCARD SEQUENCES")

# Role-level settings (`ALTER ROLE ... SET`, for every database or this one) that the runtime
# role may have: the timeouts `tenancy grant` sets (not zero: zero turns a bound off), and what
# `tenancy grant`/`check` want on Citus. The session check names any other one (`planted`).
# Any role may `ALTER ROLE CURRENT_USER SET TimeZone = ...` on itself: the setting then holds on
# every NEW connection of the role (PgBouncer opens them behind the application's back) and
# is the value RESET ALL restores. A tenant could so shift or round every other tenant's data
# (or take their timeouts off). Checked in every tenant transaction, so the next one anywhere
# fails closed (planted_message) until an administrator resets it.
PLANTED_SQL = """
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
             'pg_stat_statements.track_utility=off']));"""

# The session check, which every binding statement is a call of, answering in one text value
# (session_state() below reads it), and which then makes the binding's two settings: releases
# session advisory locks; names planted role-level settings (above); says
# whether the connection is clean. Not clean: a prepared statement made by SQL (`PREPARE`,
# from_sql; psycopg prepares through the protocol, so such a statement can only be an attempt
# to take over a name, `_pg3_N`, that the next checkout would execute) or a LISTEN channel
# (UNLISTEN is refused on a standby and only acts at commit). The transport then discards that
# one connection instead of using it.
#
# Planted settings are checked once per backend, not in every transaction: a role setting is
# read when a backend starts, so one planted later cannot reach a backend already checked. The
# function returns the backend it ran on, the caller keeps it once the backend passed and
# passes it back as `p_backend`, and the lookup is skipped while the same backend answers:
# - `pid@start` (pid and start time, from pg_stat_get_activity: a pid is reused, the pair
#   never is) names it exactly; reading it costs a copy of every backend's status (~80k
#   instructions, more than the lookup it saves), so it is the form for connections whose
#   backend can change under them (PgBouncer);
# - a bare `pid` is what the caller passes instead when the libpq connection itself is that
#   backend's (its BackendKeyData pid is the checked backend's pid: no pooler in between, so
#   the backend cannot change for the connection's life); comparing it costs nothing.
# Any other backend (a new connection, another one behind PgBouncer) is checked in full. A
# caller that cannot vouch for the reset (a transaction joined to the application's) keeps
# nothing. (The check reads the catalog as it is now: a setting planted, picked up by a new
# backend and removed again before that backend's first tenant transaction goes unseen;
# reading the backend's own settings, pg_settings, costs ~0.5 ms, too much for every backend
# behind a transaction-mode PgBouncer. README: Known limits.)
#
# One scalar in the statement's select list, not a function in its FROM list with OUT columns:
# a set-returning call with OUT parameters builds a tuple descriptor and a tuplestore in every
# transaction (~70k server instructions more per transaction, measured with callgrind).
#
# A PL/pgSQL function, not expressions of the binding statement itself: that statement is sent
# unnamed on purpose (a prepared one could be replaced by SQL of the tenant's), so PostgreSQL
# parses and plans it in every transaction, ~0.1-0.2 ms for these catalog subqueries; the
# function's plans are cached per backend, and the statement that calls it plans in
# microseconds. Nothing of it can be taken over: it is the owner's, in the `tenancy` schema
# where the runtime role creates nothing, called schema-qualified, every name in it
# schema-qualified (no search_path lookup), and with no SET clause (which would undo the
# binding's set_config at its exit). SECURITY INVOKER: it needs no rights beyond the caller's.
#
# With `true` it first resets the session (RESET_SQL): the fallback, where the binding is a
# statement of its own inside the transaction, so the reset costs no statement (no round trip
# on drivers without a pipeline, such as asyncpg). The binding's settings are made after it.
CHECK_FUNCTION = f"{SCHEMA}.session_state"
CHECK_SIGNATURE = f"{CHECK_FUNCTION}(boolean, text, text, text)"
# Before revision 0006 (dropped; session_state replaces them).
OLD_CHECK_SIGNATURES = (f"{SCHEMA}.session_check(boolean)", f"{SCHEMA}.session_check(boolean, text)")
_TAINTED_STATE = "!tainted"
_PLANTED_STATE = "!planted:"
_RESETS = "\n".join(f"    EXECUTE '{sql}';" for sql in RESET_SQL)
_CHECK_SQL = f"""
CREATE OR REPLACE FUNCTION {CHECK_FUNCTION}(
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
{_RESETS}
  END IF;
  PERFORM pg_catalog.pg_advisory_unlock_all();
  IF p_backend OPERATOR(pg_catalog.=) v_pid THEN
    v_backend := v_pid;
  ELSE
    SELECT v_pid OPERATOR(pg_catalog.||) '@' OPERATOR(pg_catalog.||)
           pg_catalog.date_part('epoch', a.backend_start)::pg_catalog.numeric::pg_catalog.text
      INTO v_backend FROM pg_catalog.pg_stat_get_activity(pg_catalog.pg_backend_pid()) a;
    IF v_backend IS NULL OR p_backend IS NULL OR p_backend OPERATOR(pg_catalog.<>) v_backend THEN
{PLANTED_SQL}
      IF planted IS NOT NULL THEN
        RETURN '{_PLANTED_STATE}' OPERATOR(pg_catalog.||) planted;
      END IF;
    END IF;
  END IF;
  IF EXISTS (SELECT FROM pg_catalog.pg_prepared_statements p WHERE p.from_sql)
     OR EXISTS (SELECT FROM pg_catalog.pg_listening_channels()) THEN
    RETURN '{_TAINTED_STATE}';
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

# A backend's name: its pid, then (the exact form) `@` and its start time.
_BACKEND = re.compile(r"([0-9]{1,10})(@[0-9]{1,12}(\.[0-9]{1,6})?)?")


@dataclass(frozen=True)
class SessionState:
    """What the session check (:data:`CHECK_FUNCTION`) answered, read by :func:`session_state`."""

    backend: str | None  # pass back as p_backend next time (None: check in full)
    planted: str | None  # names of planted role settings: refuse, discard the connection
    tainted: bool  # SQL left state on the connection: refuse, discard it


def session_state(value: str | bytes | None, client_pid: int | None) -> SessionState:
    """Read the check's answer; *client_pid*: the pid the driver's connection got from the
    server when it connected (libpq's BackendKeyData), or None when unknown.

    Anything but the function's own forms is taken as tainted (fail closed)."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if value is None:
        return SessionState(None, None, True)
    if value.startswith(_PLANTED_STATE):
        return SessionState(None, value[len(_PLANTED_STATE) :] or "?", False)
    if value == "":
        return SessionState(None, None, False)
    name = _BACKEND.fullmatch(value)
    if name is None:
        return SessionState(None, None, True)
    # The libpq connection is this backend's own (no pooler between): its backend cannot
    # change, and the bare pid is as good as the exact name, at no cost to compare.
    if name.group(2) is not None and client_pid is not None and name.group(1) == str(client_pid):
        return SessionState(name.group(1), None, False)
    return SessionState(value, None, False)


def clean_sql(backend: str | None) -> bytes:
    """The check alone, for a transport whose statements take no parameters (Citus sends it
    after its two ``SET LOCAL``): *backend* (a :class:`SessionState` ``backend``) inlined."""
    if backend is not None and not _BACKEND.fullmatch(backend):
        backend = None  # never inline anything else; NULL only means a full check
    argument = "NULL" if backend is None else f"'{backend}'"
    return f"SELECT {CHECK_FUNCTION}(false, {argument})".encode("ascii")


CLEAN_SQL = clean_sql(None)

# Bound parameters, never text: other backends of the role read query text in pg_stat_activity.
# The binding and the check in one call (BIND_RESET_SQL: and the reset first, the fallback): $1 the
# instance id, $2 its seal, $3 the backend already checked. The settings are made by the function
# (transaction-local, like SET LOCAL: it has no SET clause to undo them at its exit) after its
# checks passed and after its reset; as set_config() calls in the statement itself they cost
# ~45k more server instructions per transaction (parsed and planned in every unnamed statement).
BIND_SQL = f"SELECT {CHECK_FUNCTION}(false, $3, $1, $2)"
BIND_RESET_SQL = f"SELECT {CHECK_FUNCTION}(true, $3, $1, $2)"
TAINTED = (
    "tenancy: SQL on this connection left state that a later checkout could use (prepared "
    "statements made by PREPARE, or LISTEN channels); the connection was discarded"
)


def planted_message(names: str) -> str:
    """The refusal of a tenant transaction whose role has planted role-level settings *names*."""
    first = names.split(", ")[0]
    return (
        f"tenancy: the runtime role has role-level settings ({names}) that every new connection "
        "starts with and RESET ALL restores; SQL run as the role can plant them (ALTER ROLE "
        "CURRENT_USER SET ...) to alter other tenants' transactions, so tenant transactions are "
        f"refused until an administrator removes them: ALTER ROLE <runtime role> RESET {first} "
        "(and IN DATABASE <db> RESET ..., for each one; `tenancy check` lists them)"
    )


@dataclass(frozen=True)
class BindingKey:
    """One binding key: its id (named in every seal) and its 32 secret bytes (never shown)."""

    key_id: str
    secret: bytes = field(repr=False)

    def __repr__(self) -> str:
        return f"BindingKey(key_id={self.key_id!r})"

    def as_text(self) -> str:
        """The ``TENANCY_BINDING_KEY`` form, ``<key_id>:<64 hex digits>`` (a secret)."""
        return f"{self.key_id}:{self.secret.hex()}"


def parse_binding_key(value: str) -> BindingKey:
    """Parse ``<key_id>:<64 hex digits>`` (the ``TENANCY_BINDING_KEY`` form)."""
    value = value.strip().lower()
    if not BINDING_KEY_PATTERN.fullmatch(value):
        # Never echo the value: it is (or was meant to be) a secret.
        raise ConfigurationError(f"{ENV_VAR} must look like '<key id>:<64 hex digits>'")
    key_id, secret = value.split(":")
    return BindingKey(str(int(key_id)), bytes.fromhex(secret))


def seal(key: BindingKey, tenant: uuid.UUID) -> str:
    """The seal of *tenant* under *key*: ``<key_id>.<hex HMAC-SHA256(canonical uuid)>``."""
    digest = hmac.new(key.secret, str(tenant).encode("ascii"), hashlib.sha256).hexdigest()
    return f"{key.key_id}.{digest}"


def registration_proof(key: BindingKey, tenant: uuid.UUID) -> str:
    """The proof ``tenancy.register_tenant`` needs: only code holding the key can register.

    Different from the seal (another message), so SQL that reads its own transaction's seal
    cannot use it to (re)activate its tenant.
    """
    message = f"{_REGISTER_PREFIX}{tenant}".encode("ascii")
    return f"{key.key_id}.{hmac.new(key.secret, message, hashlib.sha256).hexdigest()}"


def bind_parameters(tenant: uuid.UUID, tenant_seal: str) -> tuple[str, str]:
    """The two parameters of :data:`BIND_SQL`."""
    return str(tenant), tenant_seal


def new_key() -> tuple[bytes, bytes, bytes]:
    """A fresh random key and its HMAC pads: ``(key, ipad, opad)``, 32 + 64 + 64 bytes."""
    key = secrets.token_bytes(32)
    block = key.ljust(64, b"\0")
    return key, bytes(b ^ 0x36 for b in block), bytes(b ^ 0x5C for b in block)


def newest_key(connection: Connection) -> BindingKey | None:
    """The newest key that still verifies, read as the owner (None if there is none)."""
    row = connection.execute(
        text(
            f"SELECT key_id::text, key FROM {SCHEMA}.binding_keys WHERE retired_at IS NULL "
            "ORDER BY key_id DESC LIMIT 1"
        )
    ).one_or_none()
    return None if row is None else BindingKey(row[0], bytes(row[1]))


class KeySource:
    """Where tenant sessions get the binding key: configured, or read once via the admin engine.

    *load* runs at most once successfully (cached); it runs inside the session's own context,
    so an ``AsyncEngine``'s ``sync_engine`` works from ``AsyncSession`` code.
    """

    def __init__(self, key: BindingKey | None, load: Callable[[], BindingKey | None] | None) -> None:
        self._key = key
        self._load = load
        self._lock = threading.Lock()
        self._seals: OrderedDict[uuid.UUID, str] = OrderedDict()

    def __repr__(self) -> str:
        return f"<KeySource {'configured' if self._key is not None else 'admin engine'}>"

    def key(self) -> BindingKey:
        """The key, loading it on first use; :class:`~tenancy.ConfigurationError` if none."""
        key = self._key
        if key is not None:
            return key
        if self._load is not None:
            key = self._load()
        if key is None:
            raise ConfigurationError(
                f"tenant sessions on PostgreSQL need the binding key: set {ENV_VAR} (binding_key=) "
                "or pass admin_engine= so it can be read; `alembic upgrade heads` creates the key"
            )
        with self._lock:
            self._key = key
        return key

    def seal(self, tenant: uuid.UUID) -> str:
        """*tenant*'s seal under the key (memoized, bounded)."""
        # A hit takes no lock: dict.get is atomic under the GIL, and the recency update is
        # only a hint for eviction (a concurrent insert may evict first; the seal is then
        # computed again, never wrong).
        found = self._seals.get(tenant)
        if found is not None:
            try:
                self._seals.move_to_end(tenant)
            except KeyError:  # evicted by another thread meanwhile: still this tenant's seal
                return found
            return found
        found = seal(self.key(), tenant)
        with self._lock:
            lru.put(self._seals, tenant, found, SEAL_CACHE_SIZE)
        return found


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# The verification function. PL/pgSQL (its plans are cached; a SQL function is re-planned on
# every call, ~50 µs); SECURITY DEFINER so it can read the key table. Every name in it is
# schema-qualified (functions, operators, types, the table), so nothing on the caller's
# search_path can stand in for a built-in; that is the same protection as a `SET search_path`
# clause, which would cost ~1 µs per call. Malformed settings never raise: an unknown key id
# or a non-matching HMAC returns NULL, and the text is cast to uuid only after its seal
# verified (only the application seals, and only canonical UUIDs).
_VERIFY_SQL = f"""
CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS pg_catalog.uuid
LANGUAGE plpgsql STABLE PARALLEL SAFE SECURITY DEFINER
AS $tenancy$
DECLARE
  v_id pg_catalog.text := pg_catalog.current_setting('tenancy.instance_id', true);
  v_seal pg_catalog.text := pg_catalog.current_setting('tenancy.seal', true);
  v_ipad pg_catalog.bytea;
  v_opad pg_catalog.bytea;
BEGIN
  SELECT k.ipad, k.opad INTO v_ipad, v_opad FROM {SCHEMA}.binding_keys k
   WHERE k.key_id::pg_catalog.text OPERATOR(pg_catalog.=) pg_catalog.split_part(v_seal, '.', 1)
     AND k.retired_at IS NULL;
  IF NOT FOUND OR v_id IS NULL THEN
    RETURN NULL;
  END IF;
  IF pg_catalog.encode(pg_catalog.sha256(v_opad OPERATOR(pg_catalog.||) pg_catalog.sha256(
       v_ipad OPERATOR(pg_catalog.||) pg_catalog.convert_to(v_id, 'UTF8'))), 'hex')
     OPERATOR(pg_catalog.=) pg_catalog.split_part(v_seal, '.', 2) THEN
    RETURN v_id::pg_catalog.uuid;
  END IF;
  RETURN NULL;
END
$tenancy$
"""


# SQLSTATE of register_tenant refusing a removed tenant (class "TN", tenancy's own): the
# application turns it into tenancy.TenantRemoved.
TENANT_REMOVED_SQLSTATE = "TN001"


def _register_sql(tenants: str) -> str:
    # The one write the runtime role can make to `tenants`: insert its own verified tenant, and
    # only with a registration proof (computed by code holding the key, never present in a
    # business transaction). Nothing else of the row is touched. A removed tenant is refused,
    # never reactivated: a token (perhaps cached from before AppRemoved, in any process) is no
    # evidence of a reinstall; only AppInstalled or the sync's evidence makes it active again.
    return f"""
CREATE OR REPLACE FUNCTION {REGISTER_FUNCTION}(p_site_id text, p_proof text) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $tenancy$
DECLARE
  v_id uuid := {FUNCTION}();
  v_ipad bytea;
  v_opad bytea;
BEGIN
  IF v_id IS NULL THEN
    RAISE EXCEPTION 'tenancy: no verified tenant binding in this transaction'
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  SELECT k.ipad, k.opad INTO v_ipad, v_opad FROM {SCHEMA}.binding_keys k
   WHERE k.key_id::text = split_part(p_proof, '.', 1) AND k.retired_at IS NULL;
  IF NOT FOUND OR encode(sha256(v_opad || sha256(v_ipad ||
       convert_to('{_REGISTER_PREFIX}' || v_id::text, 'UTF8'))), 'hex')
     IS DISTINCT FROM split_part(p_proof, '.', 2) THEN
    RAISE EXCEPTION 'tenancy: registration proof does not verify'
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  INSERT INTO {tenants} AS t (instance_id, status, site_id, first_seen_at)
  VALUES (v_id, 'active', left(p_site_id, 64), now())
  ON CONFLICT (instance_id) DO NOTHING;
  IF NOT FOUND AND EXISTS (SELECT 1 FROM {tenants} t
                            WHERE t.instance_id = v_id AND t.status IS DISTINCT FROM 'active') THEN
    RAISE EXCEPTION 'tenancy: tenant removed'
      USING ERRCODE = '{TENANT_REMOVED_SQLSTATE}';
  END IF;
END
$tenancy$
"""


def binding_objects_sql(*, tenants_schema: str | None = None) -> list[str]:
    """DDL (idempotent) for the ``tenancy`` schema: key table, verification and registration.

    Run as the owner role. EXECUTE is revoked from PUBLIC; ``tenancy grant`` grants it to the
    runtime role. The registration function exists only when *tenants_schema* is given.
    """
    statements = [
        f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
        f"REVOKE ALL ON SCHEMA {SCHEMA} FROM PUBLIC",
        f"CREATE TABLE IF NOT EXISTS {SCHEMA}.binding_keys ("
        " key_id integer PRIMARY KEY,"
        " key bytea NOT NULL CHECK (length(key) = 32),"
        " ipad bytea NOT NULL, opad bytea NOT NULL,"
        " created_at timestamptz NOT NULL DEFAULT now(),"
        " retired_at timestamptz)",
        f"REVOKE ALL ON TABLE {SCHEMA}.binding_keys FROM PUBLIC",
        _VERIFY_SQL,
        f"REVOKE ALL ON FUNCTION {FUNCTION}() FROM PUBLIC",
        # Before revision 0006 the check was session_check (returning OUT columns).
        *(f"DROP FUNCTION IF EXISTS {old}" for old in OLD_CHECK_SIGNATURES),
        _CHECK_SQL,
        f"REVOKE ALL ON FUNCTION {CHECK_SIGNATURE} FROM PUBLIC",
    ]
    if tenants_schema is not None:
        statements += [
            _register_sql(f"{_quote(tenants_schema)}.tenants"),
            f"REVOKE ALL ON FUNCTION {REGISTER_FUNCTION}(text, text) FROM PUBLIC",
        ]
    return statements


def ensure_binding_objects(connection: Connection) -> None:
    """Create the binding objects if missing and a first key if there is none (owner role)."""
    tenants_schema = connection.execute(
        text(
            "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.oid = to_regclass('tenants')"
        )
    ).scalar_one_or_none()
    exists = connection.execute(
        text("SELECT to_regprocedure(:f) IS NOT NULL"), {"f": f"{FUNCTION}()"}
    ).scalar_one()
    has_register = connection.execute(
        text("SELECT to_regprocedure(:f) IS NOT NULL"), {"f": f"{REGISTER_FUNCTION}(text, text)"}
    ).scalar_one()
    has_check = connection.execute(
        text("SELECT to_regprocedure(:f) IS NOT NULL"), {"f": CHECK_SIGNATURE}
    ).scalar_one()
    if not exists or not has_check or (tenants_schema is not None and not has_register):
        for statement in binding_objects_sql(tenants_schema=tenants_schema):
            connection.execute(text(statement))
    has_key = connection.execute(
        text(f"SELECT EXISTS (SELECT 1 FROM {SCHEMA}.binding_keys WHERE retired_at IS NULL)")
    ).scalar_one()
    if not has_key:
        add_key(connection)


def add_key(connection: Connection) -> str:
    """Add a new random key (the newest: new seals use it); returns its id. Owner role."""
    key, ipad, opad = new_key()
    # Two statements, not INSERT ... SELECT max() ... RETURNING: on Citus the key table is a
    # reference table, where that form fails ("missing FROM-clause entry"). Two concurrent
    # rotations collide on the primary key; one fails and can be run again.
    key_id = connection.execute(
        text(f"SELECT coalesce(max(key_id), 0) + 1 FROM {SCHEMA}.binding_keys")
    ).scalar_one()
    connection.execute(
        text(f"INSERT INTO {SCHEMA}.binding_keys (key_id, key, ipad, opad) VALUES (:id, :k, :i, :o)"),
        {"id": key_id, "k": key, "i": ipad, "o": opad},
    )
    return str(key_id)
