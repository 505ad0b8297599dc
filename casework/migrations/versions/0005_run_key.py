"""Run key: the data snapshot, model version and rules version a run worked on (runs.snapshot, ...).

With the as-of date they key a nightly run: a second run with the same key finds the first one
completed and does nothing, and a run that was killed is recognised and taken over.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


COLUMNS = (("snapshot", sa.String(64)), ("model_version", sa.String(200)), ("rules_version", sa.String(500)))


def upgrade() -> None:
    # A store made by create_all before migrations already has them: adopt it as it is.
    inspector = sa.inspect(op.get_bind())
    present = {c["name"] for c in inspector.get_columns("runs")}
    indexed = {i["name"] for i in inspector.get_indexes("runs")}
    with op.batch_alter_table("runs") as batch:
        for name, type_ in COLUMNS:
            if name not in present:
                batch.add_column(sa.Column(name, type_))
        if "ix_runs_as_of_flow" not in indexed:
            batch.create_index("ix_runs_as_of_flow", ["as_of", "flow"])


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_index("ix_runs_as_of_flow")
        batch.drop_column("rules_version")
        batch.drop_column("model_version")
        batch.drop_column("snapshot")
