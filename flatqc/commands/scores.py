"""``flatqc thresholds`` and ``flatqc rescore``: the dated threshold files in force, and scoring past nights again
(contract 9).

Each verb imports what it uses when it runs, so that ``flatqc thresholds --help`` costs no more than click.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict
from datetime import UTC, date, datetime

import click

from flatqc.commands.operations import says_when_database_unreachable

SHORT_HASH = 12
"""Hex digits of a file's sha256 shown in tables (``--json`` has them all)."""


@click.command()
@click.option("--night", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Night DATE (YYYY-MM-DD) to show the thresholds of; default: today (UTC).")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def thresholds(night: datetime | None, as_json: bool) -> None:
    """List the threshold files of FLATQC_THRESHOLDS_DIR and the thresholds in force for a night.

    Every file with its valid_from, name and content hash, the one in force for the night marked (the newest whose
    valid_from <= the night; the built-in thresholds before the first file or without a folder), then each of its
    thresholds on one line. A broken file ends the command with exit status 1 and its error: file, line, key.
    """
    from rich.table import Table

    from flatqc.console import make_console
    from flatqc.settings import Settings
    from flatqc.threshold_files import folder_name, thresholds_of
    from qc.thresholds import ThresholdFileError, describe

    settings = Settings()
    day = night.date() if night else datetime.now(UTC).date()
    try:
        loaded = thresholds_of(settings)
    except ThresholdFileError as exc:
        raise click.ClickException(str(exc)) from None
    chosen = loaded.for_night(day)
    files = (loaded.built_in, *loaded.files)
    if as_json:
        click.echo(json.dumps({
            "folder": folder_name(settings.thresholds_dir), "night": day.isoformat(), "in_force": chosen.name,
            "files": [{"name": f.name, "valid_from": f.valid_from.isoformat(), "sha256": f.sha256,
                       "in_force": f is chosen} for f in files],
            "thresholds": [asdict(t) | {"text": describe(t)} for t in chosen.thresholds],
        }, indent=2))
        return
    console = make_console()
    console.print(f"threshold folder: {folder_name(settings.thresholds_dir)}", markup=False, highlight=False)
    table = Table(title="threshold files", title_justify="left")
    for column in ("valid from", "name", "sha256", f"in force {day}"):
        table.add_column(column)
    for f in files:
        mark = f is chosen
        table.add_row("—" if f is loaded.built_in else f.valid_from.isoformat(), f.name,
                      (f.sha256 or "—")[:SHORT_HASH], "[bold green]yes[/]" if mark else "",
                      style="bold" if mark else None)
    console.print(table)
    console.print(f"in force {day}: {chosen.name}, {len(chosen.thresholds)} thresholds", markup=False,
                  highlight=False)
    lines = Table()
    lines.add_column("line", justify="right")
    lines.add_column("threshold")
    for t in chosen.thresholds:
        lines.add_row("—" if t.line is None else str(t.line), describe(t))
    console.print(lines)


@click.command()
@click.option("--from", "date_from", type=click.DateTime(["%Y-%m-%d"]), required=True, help="First night.")
@click.option("--to", "date_to", type=click.DateTime(["%Y-%m-%d"]), required=True, help="Last night (inclusive).")
@click.option("--db", "db_url", default=None, help="Database URL (default: FLATQC_DB_URL, sqlite:///./var/flatqc.db).")
@says_when_database_unreachable
def rescore(date_from: date, date_to: date, db_url: str | None) -> None:
    """Score every set of the nights FROM..TO again against the threshold file in force for its night.

    Sets go oldest MJD-OBS first, each against the file in force for its night and the earlier good rows the
    database holds (sets rejected in review or failed left out); running it twice changes nothing. Prints how many
    sets were scored, those whose scores changed (the set's score before -> after) and the threshold files used.
    Sets stored without scores (a broken threshold file at the time) are scored now. A broken file ends the command
    with exit status 1 and its error, before anything is written.
    """
    from rich.markup import escape
    from rich.progress import Progress
    from rich.table import Table

    from flatqc.console import make_console, plural
    from flatqc.db import connect
    from flatqc.scoring import Rescored, rescore_set, sets_to_rescore
    from flatqc.settings import Settings
    from flatqc.threshold_files import thresholds_of
    from qc.thresholds import ThresholdFileError

    settings = Settings(db_url=db_url) if db_url else Settings()
    try:
        loaded = thresholds_of(settings)
    except ThresholdFileError as exc:
        raise click.ClickException(str(exc)) from None
    nights = f"{date_from:%Y-%m-%d}..{date_to:%Y-%m-%d}"
    engine = connect(settings.db_url)
    todo = sets_to_rescore(engine, f"{date_from:%Y-%m-%d}", f"{date_to:%Y-%m-%d}")
    done: list[Rescored] = []
    with Progress(console=make_console(stderr=True), transient=True) as progress:
        task = progress.add_task(f"scoring {nights}", total=len(todo))
        for qc1_table, set_id in todo:
            result = rescore_set(engine, loaded, qc1_table, set_id)
            if result is not None:
                done.append(result)
            progress.advance(task)
    engine.dispose()
    console = make_console()
    changed = [r for r in done if r.changed]
    console.print(f"{plural(len(done), 'set')} of the nights {nights} scored again, {len(changed)} changed",
                  highlight=False)
    if changed:
        table = Table(title="changed", title_justify="left")
        for column in ("set", "night", "profile", "score before -> after", "thresholds file"):
            table.add_column(column)
        for r in changed:
            table.add_row(r.set_id, r.night, r.profile, f"{r.before or 'none'} -> {r.after or 'none'}"
                          + ("" if r.before != r.after else " (parameter scores or file)"), escape(r.thresholds_file))
        console.print(table)
    for name, count in sorted(Counter(r.thresholds_file for r in done).items()):
        console.print(f"thresholds file {name}: {plural(count, 'set')}", markup=False, highlight=False)
