"""Schema migrations with Alembic, run from code: no ``alembic.ini``, the caller's connection and transaction.

The revisions live in ``versions/`` (``0001`` is the baseline, the schema of the last release before migrations);
``env.py`` runs them on the connection passed in ``config.attributes["connection"]``. :func:`upgrade` is what
:func:`flatqc.db.create_schema` runs under the schema lock.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.operations import Operations
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.schema import SchemaItem

BASELINE = "0001"
"""The first revision: the schema that databases made before migrations existed are completed to, then stamped."""


def alembic_config(conn: Connection | None = None) -> Config:
    """An Alembic configuration for the revisions of this package, running on ``conn`` (None: no database)."""
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent).replace("%", "%%"))
    config.attributes["connection"] = conn
    return config


def head() -> str:
    """The newest revision."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current(conn: Connection) -> str | None:
    """The database's revision (None: not versioned yet, empty or made before migrations)."""
    return MigrationContext.configure(conn).get_current_revision()


def upgrade(conn: Connection) -> None:
    """Bring the database on ``conn`` to the newest revision, in the caller's transaction.

    Empty: every revision from the baseline. Versioned: the revisions it lacks (none at head). Tables but no
    ``alembic_version`` (made before migrations): first completed to the baseline (missing tables created, missing
    columns added, as flatqc did on start before migrations), stamped with it, then upgraded.
    """
    config = alembic_config(conn)
    inspector = sa.inspect(conn)
    if not inspector.has_table("alembic_version"):
        baseline = ScriptDirectory.from_config(config).get_revision(BASELINE).module.tables()
        present = set(inspector.get_table_names())
        if present & baseline.keys():
            _complete_to_baseline(conn, baseline, present)
            command.stamp(config, BASELINE)
    command.upgrade(config, "head")


def _complete_to_baseline(conn: Connection, baseline: dict[str, list[SchemaItem]], present: set[str]) -> None:
    """Create the baseline's tables missing on ``conn`` and add the columns missing from the others (nullable: the
    rows already there have no value)."""
    op = Operations(MigrationContext.configure(conn))
    inspector = sa.inspect(conn)
    for name, items in baseline.items():
        if name not in present:
            op.create_table(name, *items)
            continue
        have = {c["name"] for c in inspector.get_columns(name)}
        for column in sa.Table(name, sa.MetaData(), *items).columns:
            if column.name not in have:
                op.add_column(name, sa.Column(column.name, column.type))
