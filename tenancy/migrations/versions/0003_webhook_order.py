"""Webhook order and removed tenants: ``tenants.last_event_at``, and a registration that refuses
a removed tenant instead of reactivating it.

``last_event_at`` is the issue time (``iat``) of the newest Wix webhook event applied to the
row; an event older than it is ignored (Wix delivers late, out of order and twice).
``tenancy.register_tenant`` now raises SQLSTATE ``TN001`` for a tenant whose status is not
``active``: a token, even one cached before ``AppRemoved``, is no evidence of a reinstall.
Frozen SQL, no import of tenancy. Downgrading drops the column and restores the function of
``0001``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy import text

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# {tenants} is the quoted schema of the tenants table, then ".tenants".
REGISTER = """
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
  ON CONFLICT (instance_id) DO NOTHING;
  IF NOT FOUND AND EXISTS (SELECT 1 FROM {tenants} t
                            WHERE t.instance_id = v_id AND t.status IS DISTINCT FROM 'active') THEN
    RAISE EXCEPTION 'tenancy: tenant removed'
      USING ERRCODE = 'TN001';
  END IF;
END
$tenancy$
"""

# The function as 0001 created it (a removed tenant was reactivated), for downgrade.
REGISTER_0001 = """
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
"""


def upgrade() -> None:
    # Nullable, no default: PostgreSQL adds the column without rewriting the table.
    op.add_column("tenants", sa.Column("last_event_at", sa.DateTime(timezone=True), nullable=True))
    _replace_register(REGISTER)


def downgrade() -> None:
    _replace_register(REGISTER_0001)
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("last_event_at")


def _replace_register(function: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    schema = bind.execute(
        text(
            "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.oid = to_regclass('tenants')"
        )
    ).scalar_one()
    # CREATE OR REPLACE keeps the function's owner and grants.
    bind.execute(text(function.replace("{tenants}", '"' + schema.replace('"', '""') + '".tenants')))
