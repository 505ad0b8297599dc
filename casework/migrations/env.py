"""Alembic environment: migrations run on the connection Store.create_schema hands over."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "casework migrations run through Store.create_schema() (or `tidlig serve`), which passes "
        "the database connection; the alembic command line is not set up for this project"
    )

context.configure(connection=connection, target_metadata=None, render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
