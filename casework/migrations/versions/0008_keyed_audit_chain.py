"""Audit rows are keyed (HMAC-SHA256 under the audit key); the rows written before stay as they are.

audit_events.scheme says how each row's hash was made; the rows already there were plain
SHA-256 and keep verifying as such. audit_scheme.keyed_from records the first seq that must be
keyed, fixed here once, so a row added later without the key cannot pass as an old one.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    # A store made by create_all with this code already has both: adopt them as they are.
    if "scheme" not in {c["name"] for c in inspector.get_columns("audit_events")}:
        # ADD COLUMN rewrites no row, so the append-only triggers have nothing to refuse.
        op.add_column("audit_events", sa.Column("scheme", sa.String(20), nullable=False, server_default="sha256"))
    if not inspector.has_table("audit_scheme"):
        op.create_table("audit_scheme", sa.Column("keyed_from", sa.Integer, primary_key=True, autoincrement=False))
        highest = bind.execute(sa.text("SELECT max(seq) FROM audit_events")).scalar() or 0
        op.execute(sa.text("INSERT INTO audit_scheme (keyed_from) VALUES (:first)").bindparams(first=highest + 1))


def downgrade() -> None:
    op.drop_table("audit_scheme")
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_column("scheme")
