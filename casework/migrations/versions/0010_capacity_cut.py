"""The week's ranking cut at capacity: who fell below it (below_capacity), each team's cut (capacity_cuts), and each flag's ranking value.

Routing no longer queues flags beyond a team's capacity: what the ranking puts below the capacity
is recorded here instead, not as flags, so nobody is asked to act on it and it does not hold a
later flag back as an open one; each team's cut keeps its counts and the score where the line fell.
Flags queued before this migration keep their queued mark.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A store made by create_all before migrations already has these: adopt them as they are.
    inspector = sa.inspect(op.get_bind())
    if "ranking_value" not in {c["name"] for c in inspector.get_columns("flags")}:
        with op.batch_alter_table("flags") as batch:
            batch.add_column(sa.Column("ranking_value", sa.Float))
    if "below_capacity" in inspector.get_table_names():
        return
    op.create_table(
        "below_capacity",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("as_of", sa.Date, nullable=False),
        sa.Column("person", sa.String(100), nullable=False),
        sa.Column("target", sa.String(20), nullable=False),
        sa.Column("team", sa.String(100), nullable=False),
        sa.Column("rank", sa.Integer, nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("ranking_value", sa.Float, nullable=False),
        sa.Column("score", sa.Integer),
        sa.Column("probability", sa.Float),
        sa.Column("model_version", sa.String(200)),
        sa.Column("rules_version", sa.String(500), nullable=False),
        sa.Column("rule_ids", sa.JSON, nullable=False),
        sa.Column("members", sa.JSON, nullable=False),
        sa.Column("run_id", sa.String(100), sa.ForeignKey("runs.run_id", name="fk_below_capacity_run_id_runs"), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_below_capacity"),
        sa.UniqueConstraint("as_of", "person", name="uq_below_capacity_as_of"),
    )
    op.create_index("ix_below_capacity_team_as_of", "below_capacity", ["team", "as_of"])
    op.create_table(
        "capacity_cuts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("as_of", sa.Date, nullable=False),
        sa.Column("team", sa.String(100), nullable=False),
        sa.Column("capacity", sa.Integer, nullable=False),
        sa.Column("candidates", sa.Integer, nullable=False),
        sa.Column("shown", sa.Integer, nullable=False),
        sa.Column("legal_duty", sa.Integer, nullable=False),
        sa.Column("below", sa.Integer, nullable=False),
        sa.Column("cutoff_score", sa.Integer),
        sa.Column("cutoff_value", sa.Float),
        sa.Column("run_id", sa.String(100), sa.ForeignKey("runs.run_id", name="fk_capacity_cuts_run_id_runs"), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_capacity_cuts"),
        sa.UniqueConstraint("as_of", "team", name="uq_capacity_cuts_as_of"),
    )


def downgrade() -> None:
    # Who fell below capacity cannot be expressed in the older schema; refuse rather than lose it.
    if op.get_bind().execute(sa.text("SELECT COUNT(*) FROM below_capacity")).scalar_one():
        raise RuntimeError("below_capacity holds records; the schema before 0008 cannot store them")
    op.drop_table("capacity_cuts")
    op.drop_index("ix_below_capacity_team_as_of", table_name="below_capacity")
    op.drop_table("below_capacity")
    with op.batch_alter_table("flags") as batch:
        batch.drop_column("ranking_value")
