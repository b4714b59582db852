"""``flatqc db upgrade | current``: the database's schema revision (Alembic migrations, :mod:`flatqc.migrations`).

Each verb imports what it uses when it runs, so that ``flatqc db --help`` costs no more than click."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from flatqc.commands.operations import says_when_database_unreachable

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


def revision_of(engine: Engine) -> str | None:
    from flatqc import migrations

    with engine.connect() as conn:
        return migrations.current(conn)


@click.group("db")
def db() -> None:
    """The database's schema (FLATQC_DB_URL): upgrade it to the newest revision, or show its revision."""


@db.command()
@says_when_database_unreachable
def upgrade() -> None:
    """Bring the database to the newest schema revision (every service also does this at start)."""
    from flatqc.db import create_schema, make_engine
    from flatqc.settings import Settings
    from flatqc.up import ensure_sqlite_folder

    settings = Settings()
    ensure_sqlite_folder(settings.db_url)
    engine = make_engine(settings.db_url)
    before = revision_of(engine)
    create_schema(engine)
    after = revision_of(engine)
    where = engine.url.render_as_string()
    click.echo(f"{where}: already at revision {after} (newest)" if before == after
               else f"{where}: upgraded from {before or 'no revision'} to {after} (newest)")


@db.command()
@says_when_database_unreachable
def current() -> None:
    """Show the database's schema revision and the newest one."""
    from flatqc import migrations
    from flatqc.db import make_engine
    from flatqc.settings import Settings

    engine = make_engine(Settings().db_url)
    revision, head = revision_of(engine), migrations.head()
    if revision == head:
        click.echo(f"{revision} (newest)")
    else:
        click.echo(f"{revision or 'no revision (empty, or made before migrations)'}; newest {head}: "
                   "`flatqc db upgrade` or any service's start upgrades it")
