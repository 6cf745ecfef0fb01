"""Alembic environment: migrations run on the connection `task_scheduler.db.migrate` passes in."""

from __future__ import annotations

from alembic import context

from task_scheduler.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()
