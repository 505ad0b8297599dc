"""Flags hold versions as wide as runs do: rules_version 500, model_version 200 characters.

The rules version names every rule file with its version, so it grows with each file a
municipality adds; at 100 characters a few more files would overflow it on PostgreSQL.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("flags") as batch:
        batch.alter_column("rules_version", type_=sa.String(500), existing_type=sa.String(100), existing_nullable=False)
        batch.alter_column("model_version", type_=sa.String(200), existing_type=sa.String(100), existing_nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("flags") as batch:
        batch.alter_column("rules_version", type_=sa.String(100), existing_type=sa.String(500), existing_nullable=False)
        batch.alter_column("model_version", type_=sa.String(100), existing_type=sa.String(200), existing_nullable=True)
