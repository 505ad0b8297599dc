"""Flags carry a version (flags.version) that every decision raises.

A decision names the version of the flag it was made on and only changes the flag if it is still
at that version, so of two people deciding at once the second is told who decided first instead
of silently overwriting them. Existing flags start at version 1 plus the decisions already made
on them.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A store made by create_all before migrations already has the column: adopt it as it is.
    if "version" not in {c["name"] for c in sa.inspect(op.get_bind()).get_columns("flags")}:
        with op.batch_alter_table("flags") as batch:
            batch.add_column(sa.Column("version", sa.Integer, nullable=False, server_default="1"))
    flags = sa.table("flags", sa.column("id"), sa.column("version", sa.Integer))
    decisions = sa.table("decisions", sa.column("id"), sa.column("flag_id"))
    made = sa.select(sa.func.count()).where(decisions.c.flag_id == flags.c.id).scalar_subquery()
    op.execute(flags.update().values(version=1 + made))


def downgrade() -> None:
    with op.batch_alter_table("flags") as batch:
        batch.drop_column("version")
