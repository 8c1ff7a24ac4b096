"""tenancy's initial schema: ``tenants``, the ``tenancy`` schema of the sealed binding, a first
binding key, row-level security on ``tenants``; on Citus also the replicated key table, the
Citus form of the check and ``tenants`` distributed by ``instance_id``.

Frozen: every statement is SQL text, written out here as the library emitted it when this
revision was made; nothing of ``tenancy`` is imported, so changing the library never rewrites
this history. A change to the schema is a new revision, frozen the same way.
``tests/db/test_frozen_migration.py`` fails when the library and the migrated schema disagree.

On SQLite only the table and its indexes exist (no row-level security there; the environment
warns). The Citus statements (``_citus_upgrade``) are a transcription of what
``tenancy.postgres.citus_binding.prepare_binding`` and ``tenancy.postgres.citus`` emitted; they run
only when the database has the ``citus`` extension.

Revision ID: 0001
Revises:
Create Date: 2026-12-06
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence

from alembic import op
from sqlalchemy import Connection, text

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("tenancy",)
depends_on: str | Sequence[str] | None = None

TENANTS_POSTGRESQL = """
CREATE TABLE tenants (
	instance_id UUID NOT NULL,
	status VARCHAR(16) DEFAULT 'active' NOT NULL,
	site_id VARCHAR(64),
	site_display_name TEXT,
	site_url TEXT,
	locale VARCHAR(32),
	payment_currency VARCHAR(8),
	time_zone VARCHAR(64),
	app_version VARCHAR(64),
	is_free BOOLEAN,
	billing_package_name VARCHAR(128),
	billing_cycle VARCHAR(32),
	billing_expires_at TIMESTAMP WITH TIME ZONE,
	billing_auto_renewing BOOLEAN,
	free_trial_status VARCHAR(32),
	permissions JSONB,
	installed_wix_apps JSONB,
	raw JSONB,
	first_seen_at TIMESTAMP WITH TIME ZONE NOT NULL,
	last_synced_at TIMESTAMP WITH TIME ZONE,
	last_sync_error TEXT,
	consecutive_failures INTEGER DEFAULT '0' NOT NULL,
	last_attempt_at TIMESTAMP WITH TIME ZONE,
	next_attempt_at TIMESTAMP WITH TIME ZONE,
	consecutive_refusals INTEGER DEFAULT '0' NOT NULL,
	CONSTRAINT pk_tenants PRIMARY KEY (instance_id),
	CONSTRAINT ck_tenants_status CHECK (status IN ('active', 'removed'))
)
"""

TENANTS_SQLITE = """
CREATE TABLE tenants (
	instance_id CHAR(32) NOT NULL,
	status VARCHAR(16) DEFAULT 'active' NOT NULL,
	site_id VARCHAR(64),
	site_display_name TEXT,
	site_url TEXT,
	locale VARCHAR(32),
	payment_currency VARCHAR(8),
	time_zone VARCHAR(64),
	app_version VARCHAR(64),
	is_free BOOLEAN,
	billing_package_name VARCHAR(128),
	billing_cycle VARCHAR(32),
	billing_expires_at DATETIME,
	billing_auto_renewing BOOLEAN,
	free_trial_status VARCHAR(32),
	permissions JSON,
	installed_wix_apps JSON,
	raw JSON,
	first_seen_at DATETIME NOT NULL,
	last_synced_at DATETIME,
	last_sync_error TEXT,
	consecutive_failures INTEGER DEFAULT '0' NOT NULL,
	last_attempt_at DATETIME,
	next_attempt_at DATETIME,
	consecutive_refusals INTEGER DEFAULT '0' NOT NULL,
	CONSTRAINT pk_tenants PRIMARY KEY (instance_id),
	CONSTRAINT ck_tenants_status CHECK (status IN ('active', 'removed'))
)
"""

# The sync's claims: tenants not in backoff by last sync (partial), and by next attempt.
INDEXES = [
    "CREATE INDEX ix_tenants_next_attempt_at ON tenants (next_attempt_at)",
    "CREATE INDEX ix_tenants_sync_order ON tenants (last_synced_at) WHERE next_attempt_at IS NULL",
]

# The schema of the sealed binding: the key table (owner only) and the verification function.
BINDING = [
    "CREATE SCHEMA IF NOT EXISTS tenancy",
    "REVOKE ALL ON SCHEMA tenancy FROM PUBLIC",
    "CREATE TABLE IF NOT EXISTS tenancy.binding_keys ("
    " key_id integer PRIMARY KEY,"
    " key bytea NOT NULL CHECK (length(key) = 32),"
    " ipad bytea NOT NULL, opad bytea NOT NULL,"
    " created_at timestamptz NOT NULL DEFAULT now(),"
    " retired_at timestamptz)",
    "REVOKE ALL ON TABLE tenancy.binding_keys FROM PUBLIC",
    """
CREATE OR REPLACE FUNCTION tenancy.current_instance_id() RETURNS pg_catalog.uuid
LANGUAGE plpgsql STABLE PARALLEL SAFE SECURITY DEFINER
AS $tenancy$
DECLARE
  v_id pg_catalog.text := pg_catalog.current_setting('tenancy.instance_id', true);
  v_seal pg_catalog.text := pg_catalog.current_setting('tenancy.seal', true);
  v_ipad pg_catalog.bytea;
  v_opad pg_catalog.bytea;
BEGIN
  SELECT k.ipad, k.opad INTO v_ipad, v_opad FROM tenancy.binding_keys k
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
""",
    "REVOKE ALL ON FUNCTION tenancy.current_instance_id() FROM PUBLIC",
]

# The registration function; {tenants} is the quoted schema of the tenants table, then ".tenants".
REGISTER = [
    """
CREATE OR REPLACE FUNCTION tenancy.register_tenant(p_site_id text, p_proof text) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $tenancy$
DECLARE
  v_id uuid := tenancy.current_instance_id();
  v_ipad bytea;
  v_opad bytea;
BEGIN
  IF v_id IS NULL THEN
    RAISE EXCEPTION 'tenancy: no verified tenant binding in this transaction'
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  SELECT k.ipad, k.opad INTO v_ipad, v_opad FROM tenancy.binding_keys k
   WHERE k.key_id::text = split_part(p_proof, '.', 1) AND k.retired_at IS NULL;
  IF NOT FOUND OR encode(sha256(v_opad || sha256(v_ipad ||
       convert_to('tenancy.register:' || v_id::text, 'UTF8'))), 'hex')
     IS DISTINCT FROM split_part(p_proof, '.', 2) THEN
    RAISE EXCEPTION 'tenancy: registration proof does not verify'
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  INSERT INTO {tenants} AS t (instance_id, status, site_id, first_seen_at)
  VALUES (v_id, 'active', left(p_site_id, 64), now())
  ON CONFLICT (instance_id) DO UPDATE
     SET status = 'active', last_synced_at = NULL, next_attempt_at = NULL
   WHERE t.status = 'removed';
END
$tenancy$
""",
    "REVOKE ALL ON FUNCTION tenancy.register_tenant(text, text) FROM PUBLIC",
]

# Row-level security on tenants; {predicate} is the sealed check (a sub-select: once per
# statement), or on Citus the direct call (Citus refuses sub-selects in distributed policies).
PREDICATE = "instance_id = (SELECT tenancy.current_instance_id())"
CITUS_PREDICATE = "instance_id = tenancy.current_instance_id()"
ISOLATION = [
    "ALTER TABLE tenants ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE tenants FORCE ROW LEVEL SECURITY",
    "DROP POLICY IF EXISTS tenancy_tenant_isolation ON tenants",
    "CREATE POLICY tenancy_tenant_isolation ON tenants AS PERMISSIVE FOR ALL "
    "USING ({predicate}) WITH CHECK ({predicate})",
]

# Citus: the check reads the key table's shard (the same name on every node), and the seal
# names the backend's gpid and a time window of 60 s, accepted within 2 windows.
CITUS_VERIFY = """
CREATE OR REPLACE FUNCTION tenancy.current_instance_id() RETURNS uuid
LANGUAGE plpgsql STABLE PARALLEL SAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $tenancy$
DECLARE
  v_id text := current_setting('tenancy.instance_id', true);
  v_seal text := current_setting('tenancy.seal', true);
  v_window bigint;
  v_ipad bytea;
  v_opad bytea;
BEGIN
  IF v_id IS NULL OR v_seal IS NULL OR v_seal !~ '^[0-9]{1,10}[.][0-9]{1,12}[.][0-9a-f]{64}$' THEN
    RETURN NULL;
  END IF;
  v_window := split_part(v_seal, '.', 2)::bigint;
  IF abs(v_window - floor(extract(epoch FROM transaction_timestamp()) / 60))
     > 2 THEN
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


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for statement in [TENANTS_SQLITE, *INDEXES]:
            op.execute(statement)
        return
    if bind.dialect.name != "postgresql":
        raise NotImplementedError(
            f"tenancy's migrations run on PostgreSQL and SQLite, not {bind.dialect.name}"
        )
    citus = _has_citus(bind)
    for statement in [TENANTS_POSTGRESQL, *INDEXES, *BINDING]:
        bind.execute(text(statement))
    schema = bind.execute(
        text(
            "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.oid = to_regclass('tenants')"
        )
    ).scalar_one()
    tenants = '"' + schema.replace('"', '""') + '".tenants'
    for statement in REGISTER:
        bind.execute(text(statement.replace("{tenants}", tenants)))
    if not bind.execute(text("SELECT EXISTS (SELECT 1 FROM tenancy.binding_keys)")).scalar_one():
        _add_key(bind)
    predicate = CITUS_PREDICATE if citus else PREDICATE
    for statement in ISOLATION:
        bind.execute(text(statement.replace("{predicate}", predicate)))
    if citus:
        _citus_upgrade(bind)


def _has_citus(bind: Connection) -> bool:
    return bool(
        bind.execute(text("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')")).scalar()
    )


def _add_key(bind: Connection) -> None:
    """A fresh random binding key (32 bytes) and its HMAC pads, as bound parameters (never text)."""
    key = secrets.token_bytes(32)
    block = key.ljust(64, b"\0")
    ipad, opad = bytes(b ^ 0x36 for b in block), bytes(b ^ 0x5C for b in block)
    # Two statements, not INSERT ... SELECT: on Citus the key table becomes a reference table.
    key_id = bind.execute(text("SELECT coalesce(max(key_id), 0) + 1 FROM tenancy.binding_keys")).scalar_one()
    bind.execute(
        text("INSERT INTO tenancy.binding_keys (key_id, key, ipad, opad) VALUES (:id, :k, :i, :o)"),
        {"id": key_id, "k": key, "i": ipad, "o": opad},
    )


def _citus_upgrade(bind: Connection) -> None:
    """The key table on every node, the Citus check, ``tenants`` distributed (not run in CI here:
    a transcription of ``citus_binding.prepare_binding`` and ``citus.distribute_tenant_table``)."""
    keys = "tenancy.binding_keys"
    replicated = bind.execute(
        text("SELECT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = CAST(:t AS regclass))"),
        {"t": keys},
    ).scalar_one()
    if not replicated:
        bind.execute(text("SELECT create_reference_table(CAST(:t AS regclass))"), {"t": keys})
    shard = bind.execute(
        text(
            "SELECT shard_name(logicalrelid, shardid) FROM pg_dist_shard"
            " WHERE logicalrelid = CAST(:t AS regclass)"
        ),
        {"t": keys},
    ).scalar_one()
    if not re.fullmatch(r"tenancy\.binding_keys_[0-9]+", shard):
        raise RuntimeError(f"unexpected shard name for {keys}: {shard!r}")
    bind.execute(text(CITUS_VERIFY.replace("{keys_shard}", shard)))
    bind.execute(
        text("SELECT create_distributed_table(CAST(:t AS regclass), :col, colocate_with => :with)"),
        {"t": "tenants", "col": "instance_id", "with": "default"},
    )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql" and _has_citus(bind):
        distributed = bind.execute(
            text(
                "SELECT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = to_regclass('tenants'))"
            )
        ).scalar_one()
        if distributed:
            bind.execute(text("SELECT undistribute_table(CAST('tenants' AS regclass))"))
    op.execute("DROP TABLE tenants")  # its indexes and policy with it
    if bind.dialect.name == "postgresql":
        # The keys go too. Policies of your tenant tables call tenancy.current_instance_id() and
        # go with it; those tables then admit no rows until your revisions drop them.
        op.execute("DROP SCHEMA IF EXISTS tenancy CASCADE")
