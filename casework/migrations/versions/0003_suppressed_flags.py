"""Suppressed flags: status 'suppressed' and the suppression rules that held (flags.suppressed_by).

A suppressed flag is stored like any other, with status 'suppressed' and why, so nothing the
rules raised is dropped unseen (routing/suppression.py, rules/suppression.yaml).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

STATUSES_BEFORE = "status IN ('open', 'accepted', 'dismissed', 'deferred')"
STATUSES_AFTER = "status IN ('open', 'accepted', 'dismissed', 'deferred', 'suppressed')"


def upgrade() -> None:
    with op.batch_alter_table("flags") as batch:
        batch.add_column(sa.Column("suppressed_by", sa.JSON))
        batch.drop_constraint("ck_flags_status", type_="check")
        batch.create_check_constraint("ck_flags_status", STATUSES_AFTER)


def downgrade() -> None:
    # Suppressed flags cannot be expressed in the older schema; refuse rather than lose them.
    if op.get_bind().execute(sa.text("SELECT COUNT(*) FROM flags WHERE status = 'suppressed'")).scalar_one():
        raise RuntimeError("flags hold suppressed flags; the schema before 0003 cannot store them")
    with op.batch_alter_table("flags") as batch:
        batch.drop_constraint("ck_flags_status", type_="check")
        batch.create_check_constraint("ck_flags_status", STATUSES_BEFORE)
        batch.drop_column("suppressed_by")
