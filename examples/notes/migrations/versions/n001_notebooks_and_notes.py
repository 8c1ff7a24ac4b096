"""Notebooks and notes, under tenant isolation.

Revision ID: n001
Revises: (the first of the app's own branch; tenancy's revisions are a branch of their own)
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tenancy.migrations  # noqa: F401  (registers op.enable_tenant_isolation)

revision: str = "n001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "notebooks",
        sa.Column("instance_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("instance_id", "id", name=op.f("pk_notebooks")),
        sa.UniqueConstraint("instance_id", "name", name=op.f("uq_notebooks_instance_id_name")),
    )
    op.enable_tenant_isolation("notebooks")
    op.create_table(
        "notes",
        sa.Column("instance_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("notebook_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["instance_id", "notebook_id"],
            ["notebooks.instance_id", "notebooks.id"],
            name=op.f("fk_notes_instance_id_notebooks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("instance_id", "id", name=op.f("pk_notes")),
    )
    op.enable_tenant_isolation("notes")


def downgrade() -> None:
    op.disable_tenant_isolation("notes")
    op.drop_table("notes")
    op.disable_tenant_isolation("notebooks")
    op.drop_table("notebooks")
