"""Alembic environment: migrations run on the connection the engine hands over."""
from alembic import context

from engine.models import metadata

connection = context.config.attributes.get("connection")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
