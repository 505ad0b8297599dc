"""The store as it was before migrations: runs, source checks, quarantine, flags, decisions, audit log.

Tables that already exist are left alone, so a store made by the earlier create_all code is
adopted as it is. The audit table's append-only triggers are created with it.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

POSTGRES_GUARDS = [
    """CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION USING MESSAGE = 'audit_events is append-only: ' || TG_OP || ' is refused';
    END $$""",
    """CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()""",
]
SQLITE_GUARDS = [
    f"""CREATE TRIGGER audit_events_no_{operation.lower()} BEFORE {operation} ON audit_events
    BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: {operation} is refused'); END"""
    for operation in ("UPDATE", "DELETE")
]


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())

    if "audit_events" not in existing:
        op.create_table(
            "audit_events",
            sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("actor", sa.String(200), nullable=False),
            sa.Column("kind", sa.String(100), nullable=False),
            sa.Column("payload", sa.Text, nullable=False),
            sa.Column("prev_hash", sa.String(64), nullable=False),
            sa.Column("hash", sa.String(64), nullable=False),
        )
        op.create_index("ix_audit_events_kind", "audit_events", ["kind"])
        dialect = op.get_bind().dialect.name
        for guard in {"postgresql": POSTGRES_GUARDS, "sqlite": SQLITE_GUARDS}.get(dialect, []):
            op.execute(guard)

    if "runs" not in existing:
        op.create_table(
            "runs",
            sa.Column("run_id", sa.String(100), nullable=False),
            sa.Column("as_of", sa.Date, nullable=False),
            sa.Column("flow", sa.String(100), nullable=False),
            sa.Column("status", sa.String(20), nullable=False),
            sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("finished_at", sa.DateTime(timezone=True)),
            sa.Column("counts", sa.JSON),
            sa.Column("failed_stage", sa.String(100)),
            sa.Column("error", sa.Text),
            sa.PrimaryKeyConstraint("run_id", name="pk_runs"),
        )

    if "source_checks" not in existing:
        op.create_table(
            "source_checks",
            sa.Column("id", sa.Integer, nullable=False),
            sa.Column("run_id", sa.String(100), nullable=False),
            sa.Column("source", sa.String(100), nullable=False),
            sa.Column("rows_in", sa.Integer, nullable=False),
            sa.Column("rows_valid", sa.Integer, nullable=False),
            sa.Column("rows_quarantined", sa.Integer, nullable=False),
            sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("id", name="pk_source_checks"),
            sa.ForeignKeyConstraint(["run_id"], ["runs.run_id"], name="fk_source_checks_run_id_runs"),
            sa.CheckConstraint(
                "rows_in = rows_valid + rows_quarantined", name="ck_source_checks_rows_accounted"
            ),
        )
        op.create_index("ix_source_checks_run_id", "source_checks", ["run_id"])

    if "quarantine" not in existing:
        op.create_table(
            "quarantine",
            sa.Column("id", sa.Integer, nullable=False),
            sa.Column("run_id", sa.String(100), nullable=False),
            sa.Column("source", sa.String(100), nullable=False),
            sa.Column("file", sa.String(500), nullable=False),
            sa.Column("row_number", sa.Integer, nullable=False),
            sa.Column("column", sa.String(200)),
            sa.Column("expectation", sa.String(200), nullable=False),
            sa.Column("reason", sa.Text, nullable=False),
            sa.Column("value", sa.Text),
            sa.PrimaryKeyConstraint("id", name="pk_quarantine"),
            sa.ForeignKeyConstraint(["run_id"], ["runs.run_id"], name="fk_quarantine_run_id_runs"),
        )
        op.create_index("ix_quarantine_run_id", "quarantine", ["run_id"])

    if "flags" not in existing:
        op.create_table(
            "flags",
            sa.Column("id", sa.Integer, nullable=False),
            sa.Column("as_of", sa.Date, nullable=False),
            sa.Column("person", sa.String(100), nullable=False),
            sa.Column("target", sa.String(20), nullable=False),
            sa.Column("team", sa.String(100), nullable=False),
            sa.Column("priority", sa.Integer, nullable=False),
            sa.Column("rank", sa.Integer, nullable=False),
            sa.Column("queued", sa.Boolean, nullable=False),
            sa.Column("status", sa.String(20), nullable=False, server_default="open"),
            sa.Column("score", sa.Integer),
            sa.Column("probability", sa.Float),
            sa.Column("model_version", sa.String(100)),
            sa.Column("rules_version", sa.String(100), nullable=False),
            sa.Column("reasons", sa.JSON, nullable=False),
            sa.Column("run_id", sa.String(100), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("id", name="pk_flags"),
            sa.ForeignKeyConstraint(["run_id"], ["runs.run_id"], name="fk_flags_run_id_runs"),
            sa.UniqueConstraint("as_of", "person", name="uq_flags_as_of"),
            sa.CheckConstraint(
                "status IN ('open', 'accepted', 'dismissed', 'deferred')", name="ck_flags_status"
            ),
        )
        op.create_index("ix_flags_team_as_of", "flags", ["team", "as_of"])

    if "decisions" not in existing:
        op.create_table(
            "decisions",
            sa.Column("id", sa.Integer, nullable=False),
            sa.Column("flag_id", sa.Integer, nullable=False),
            sa.Column("decision", sa.String(20), nullable=False),
            sa.Column("reason", sa.Text),
            sa.Column("by", sa.String(200), nullable=False),
            sa.Column("at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("defer_until", sa.Date),
            sa.PrimaryKeyConstraint("id", name="pk_decisions"),
            sa.ForeignKeyConstraint(["flag_id"], ["flags.id"], name="fk_decisions_flag_id_flags"),
            sa.CheckConstraint(
                "decision IN ('accept', 'dismiss', 'defer')", name="ck_decisions_decision"
            ),
        )
        op.create_index("ix_decisions_flag_id", "decisions", ["flag_id"])


def downgrade() -> None:
    raise NotImplementedError("the first migration is not undone: the audit log must never be dropped")
