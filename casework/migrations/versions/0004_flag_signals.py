"""Flag signals: the model's top contributing signals behind a flag's score (flags.signals).

Stored with the flag so the caseworker reads the same explanation that was true on the night
the flag was raised, even after the model is replaced.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A store made by create_all before migrations already has the column: adopt it as it is.
    if "signals" in {c["name"] for c in sa.inspect(op.get_bind()).get_columns("flags")}:
        return
    with op.batch_alter_table("flags") as batch:
        batch.add_column(sa.Column("signals", sa.JSON))


def downgrade() -> None:
    with op.batch_alter_table("flags") as batch:
        batch.drop_column("signals")
