"""Alembic environment: runs the revisions on the connection given in ``config.attributes["connection"]`` (see
:func:`flatqc.migrations.alembic_config`), inside that connection's transaction. Leaves logging to the application
(no ``fileConfig``). SQLite gets batch mode, so that later revisions can alter its tables."""

from __future__ import annotations

from alembic import context

from flatqc.db import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("flatqc's migrations run on a given connection: use `flatqc db upgrade` or "
                       "flatqc.migrations.upgrade(conn)")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
