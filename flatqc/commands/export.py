"""``flatqc export``: QC1 rows of a range of nights as CSV or JSON, streamed (the same bytes as ``/qc1.csv`` and
``/api/qc1`` with the same filters)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import click

from flatqc.commands.operations import says_when_database_unreachable


@click.command()
@click.option("--from", "date_from", type=click.DateTime(["%Y-%m-%d"]), required=True, help="First night.")
@click.option("--to", "date_to", type=click.DateTime(["%Y-%m-%d"]), required=True, help="Last night (inclusive).")
@click.option("--profile", default="crires", show_default=True,
              help="Instrument profile (crires, crires+) or its QC1 table (crires_flat, criresp_flat).")
@click.option("--setting", multiple=True, help="Only this setting key (repeatable: any of them).")
@click.option("--detector", multiple=True, help="Only this detector (repeatable).")
@click.option("--verdict", multiple=True, help="Only this verdict: passed, failed, not_assessable (repeatable).")
@click.option("--score", multiple=True, help="Only rows of this score: ok, warn, fail, none = not scored (repeatable).")
@click.option("--review", multiple=True,
              help="Only sets whose review decision in force is this: accepted, rejected, none = not reviewed "
                   "(repeatable).")
@click.option("--format", "kind", type=click.Choice(["csv", "json"]), default="csv", show_default=True,
              help="CSV with a header line, or a JSON array of row objects.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File to write (default: standard output).")
@click.option("--db", "db_url", default=None, help="Database URL (default: FLATQC_DB_URL, sqlite:///./var/flatqc.db).")
@says_when_database_unreachable
def export(date_from: date, date_to: date, profile: str, setting: tuple[str, ...], detector: tuple[str, ...],
           verdict: tuple[str, ...], score: tuple[str, ...], review: tuple[str, ...], kind: str, out: Path | None,
           db_url: str | None) -> None:
    """Write the QC1 rows of the nights FROM..TO as CSV or JSON, every column of the profile's table.

    Rows come from a server-side cursor in batches and are written as they come, so memory stays flat over years
    of rows. The columns and their units: README (QC1 export) and /api/qc1/columns.
    """
    from rich.progress import Progress

    from flatqc.console import make_console
    from flatqc.db import connect
    from flatqc.qc1_export import BadQuery, Batch, count_rows, export_chunks, parse_query, stream_rows
    from flatqc.settings import Settings

    args = {"profile": [profile], "from": [f"{date_from:%Y-%m-%d}"], "to": [f"{date_to:%Y-%m-%d}"],
            "setting": list(setting), "detector": list(detector), "verdict": list(verdict), "score": list(score),
            "review": list(review)}
    try:
        query = parse_query(args)
    except BadQuery as exc:
        raise click.UsageError(str(exc)) from None
    engine = connect(db_url or Settings().db_url)
    with engine.connect() as conn:
        total = count_rows(conn, query)
    nights = f"{args['from'][0]}..{args['to'][0]}"
    with (Progress(console=make_console(stderr=True), transient=True, disable=out is None) as progress,
          click.open_file(str(out) if out else "-", "wb") as stream):
        task = progress.add_task(f"{query.table.name} {nights}", total=total)

        written = 0

        def counted(batches: Iterator[Batch]) -> Iterator[Batch]:
            nonlocal written
            for batch in batches:
                yield batch
                written += len(batch)
                progress.advance(task, len(batch))

        for chunk in export_chunks(query.table, kind, counted(stream_rows(engine, query))):
            stream.write(chunk.encode())
    engine.dispose()
    if out:
        click.echo(f"{written} rows of {query.table.name} ({nights}) written to {out}", err=True)
