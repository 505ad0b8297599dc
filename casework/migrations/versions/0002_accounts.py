"""The web app's tables: teams, users, sessions, login attempts, notes, rule snapshots; an index for team lists.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "teams",
        sa.Column("id", sa.String(100), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("department", sa.String(200), nullable=False),
        sa.Column("weekly_capacity", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True)),
        sa.Column("updated_by", sa.String(100)),
        sa.PrimaryKeyConstraint("id", name="pk_teams"),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("username", sa.String(100), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("team", sa.String(100)),
        sa.Column("password_hash", sa.String(200)),
        sa.Column("oidc_subject", sa.String(255)),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.ForeignKeyConstraint(["team"], ["teams.id"], name="fk_users_team_teams"),
        sa.UniqueConstraint("username", name="uq_users_username"),
        sa.UniqueConstraint("oidc_subject", name="uq_users_oidc_subject"),
        sa.CheckConstraint(
            "role IN ('caseworker', 'teamlead', 'auditor', 'admin')", name="ck_users_role"
        ),
    )
    op.create_table(
        "sessions",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name="pk_sessions"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_sessions_user_id_users"),
    )
    op.create_index("ix_sessions_user_id", "sessions", ["user_id"])
    op.create_table(
        "login_attempts",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("username", sa.String(100), nullable=False),
        sa.Column("client", sa.String(100), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("succeeded", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_login_attempts"),
    )
    op.create_index("ix_login_attempts_username", "login_attempts", ["username"])
    op.create_index("ix_login_attempts_client", "login_attempts", ["client"])
    op.create_table(
        "notes",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("flag_id", sa.Integer, nullable=False),
        sa.Column("author", sa.String(100), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_notes"),
        sa.ForeignKeyConstraint(["flag_id"], ["flags.id"], name="fk_notes_flag_id_flags"),
    )
    op.create_index("ix_notes_flag_id", "notes", ["flag_id"])
    op.create_table(
        "rule_snapshots",
        sa.Column("version", sa.String(200), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("files", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("version", name="pk_rule_snapshots"),
    )
    # A team's work list: its open flags by priority, newest batch first. With a million flags
    # the list must come from this index, not from sorting the team's whole history.
    op.create_index(
        "ix_flags_team_worklist", "flags", ["team", "status", "queued", "priority", sa.text("as_of DESC"), "rank"]
    )
    # A citizen's access request finds all their flags by pseudonym.
    op.create_index("ix_flags_person", "flags", ["person"])


def downgrade() -> None:
    op.drop_index("ix_flags_person", "flags")
    op.drop_index("ix_flags_team_worklist", "flags")
    for table in ("rule_snapshots", "notes", "login_attempts", "sessions", "users", "teams"):
        op.drop_table(table)
