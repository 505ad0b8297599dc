"""Flags keep the source rows behind them (flags.evidence) and the date a deferral ends (flags.deferred_until).

The evidence is stored the night the flag is raised, like its signals, so the trail from the
decision back to the registers stays what it was even after the registers are corrected. The
deferral's end sits on the flag, so a deferred flag is back on its team's list the day it ends,
read straight from an index, with no job to reopen it; existing deferrals are copied over from
their latest decision.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A store made by create_all before migrations already has the columns: adopt them as they are.
    existing = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("flags")}
    new = [c for c in (sa.Column("evidence", sa.JSON), sa.Column("deferred_until", sa.Date)) if c.name not in existing]
    if new:
        with op.batch_alter_table("flags") as batch:
            for column in new:
                batch.add_column(column)
    flags = sa.table("flags", sa.column("id"), sa.column("status"), sa.column("deferred_until", sa.Date))
    decisions = sa.table("decisions", sa.column("id"), sa.column("flag_id"), sa.column("decision"), sa.column("defer_until", sa.Date))
    latest = (
        sa.select(decisions.c.defer_until)
        .where(decisions.c.flag_id == flags.c.id, decisions.c.decision == "defer")
        .order_by(decisions.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    op.execute(flags.update().where(flags.c.status == "deferred").values(deferred_until=latest))


def downgrade() -> None:
    with op.batch_alter_table("flags") as batch:
        batch.drop_column("deferred_until")
        batch.drop_column("evidence")
