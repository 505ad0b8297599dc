"""Flag member scores: each member's own score and the calibrated risk of its level (flags.member_scores).

A family flag is ranked by its highest member's score; the caseworker needs every member's own
score, and what a score level means in words ("about 6 in 100"), as they were on the night.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A store made by create_all before migrations already has the column: adopt it as it is.
    if "member_scores" in {c["name"] for c in sa.inspect(op.get_bind()).get_columns("flags")}:
        return
    with op.batch_alter_table("flags") as batch:
        batch.add_column(sa.Column("member_scores", sa.JSON))


def downgrade() -> None:
    with op.batch_alter_table("flags") as batch:
        batch.drop_column("member_scores")
