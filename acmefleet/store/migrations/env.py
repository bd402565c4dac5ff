"""Alembic environment: runs against the connection handed over by ``store.migrate``."""

from __future__ import annotations

from alembic import context

from acmefleet.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("acmefleet migrations run through acmefleet.store.migrate")
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
