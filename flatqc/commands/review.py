"""``flatqc review``: accept or reject sets after looking at them, one, several or a whole night at once, and show
the decisions made (contract 9, ESO certifyProducts). Decisions are written by :mod:`flatqc.lifecycle.reviews` only.

The verb imports what it uses when it runs, so that ``flatqc review --help`` costs no more than click.
"""

from __future__ import annotations

import getpass
from datetime import datetime
from typing import TYPE_CHECKING

import click

from flatqc.commands.operations import says_when_database_unreachable

if TYPE_CHECKING:
    from rich.table import Table
    from sqlalchemy.engine import Connection

    from flatqc.lifecycle.reviews import Review


def login_name() -> str:
    """The login name of this process's user; empty when the system cannot tell (a decision then asks for --by)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no USER/LOGNAME and no passwd entry (some containers)
        return ""


@click.command()
@click.argument("set_ids", nargs=-1)
@click.option("--night", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Every set of this night (YYYY-MM-DD) that has QC1 rows, instead of SET_IDs.")
@click.option("--accept", is_flag=True, help="Accept the sets.")
@click.option("--reject", is_flag=True, help="Reject the sets: they leave the statistical thresholds and the last "
              "good set of later sets.")
@click.option("--by", default=login_name, show_default="your login name", help="Who decides.")
@click.option("--comment", default=None, help="Why (kept with the decision).")
@click.option("--db", "db_url", default=None, help="Database URL (default: FLATQC_DB_URL, sqlite:///./var/flatqc.db).")
@says_when_database_unreachable
def review(set_ids: tuple[str, ...], night: datetime | None, accept: bool, reject: bool, by: str, comment: str | None,
           db_url: str | None) -> None:
    """Accept or reject sets (SET_IDs, or every set of --night) after looking at them, or show their decisions.

    With --accept or --reject: one decision per set, replacing the one in force (every decision is kept). Without:
    the review history of each SET_ID (who, when, what, comment, replaced by which decision), or the decision in
    force on each set of --night. A refused decision (a set without QC1 rows, no reviewer name) changes nothing
    and ends the command with exit status 1 and the reason.
    """
    from flatqc.console import make_console, plural
    from flatqc.db import connect
    from flatqc.lifecycle import TransitionRefused, reviews
    from flatqc.settings import Settings

    if accept and reject:
        raise click.UsageError("--accept or --reject, not both")
    if bool(set_ids) == bool(night):
        raise click.UsageError("name the sets: SET_ID... or --night D (not both)")
    decision = reviews.Decision.ACCEPTED if accept else reviews.Decision.REJECTED if reject else None
    if decision is None and comment is not None:
        raise click.UsageError("--comment goes with --accept or --reject")
    night_date = f"{night:%Y-%m-%d}" if night else ""
    console = make_console()
    engine = connect(db_url or Settings().db_url)
    try:
        with engine.begin() as conn:
            chosen = list(set_ids) or reviews.sets_of_night(conn, night_date)
            if not chosen:
                raise click.ClickException(f"no set of the night {night_date} has QC1 rows")
            before = reviews.in_force(conn, chosen)
            if decision is None:
                tables = ([decisions_table(f"night {night_date}", chosen, before)] if night else
                          [history_table(conn, set_id) for set_id in chosen])
            else:
                reviews.decide(conn, chosen, decision, by, comment)
    except TransitionRefused as refused:
        raise click.ClickException(str(refused)) from None
    finally:
        engine.dispose()
    if decision is None:
        for table in tables:
            console.print(table)
        return
    for set_id in dict.fromkeys(chosen):
        was = before.get(set_id)
        console.print(f"set {set_id}: {was.decision if was else reviews.NOT_REVIEWED} -> {decision}",
                      highlight=False)
    console.print(f"{plural(len(set(chosen)), 'set')} {decision} by {by.strip()}"
                  + (f": {comment.strip()}" if comment else ""), markup=False, highlight=False)


def history_table(conn: Connection, set_id: str) -> Table:
    """Every decision on ``set_id``, newest first; a set without QC1 rows nor decisions is refused."""
    from rich.markup import escape
    from rich.table import Table

    from flatqc.lifecycle import reviews

    made = reviews.history(conn, set_id)
    if not made and not reviews.processed_sets(conn, [set_id]):
        raise click.ClickException(f"no QC1 rows for set {set_id}: only processed sets are reviewed")
    table = Table(title=f"review of set {set_id}: {made[0].decision if made else reviews.NOT_REVIEWED}",
                  title_justify="left")
    for column in ("#", "decided (UTC)", "decision", "by", "comment", "replaced by"):
        table.add_column(column)
    for r in made:
        table.add_row(str(r.id), f"{r.decided_at:%Y-%m-%d %H:%M:%S}", r.decision, escape(r.reviewer),
                      escape(r.comment or ""), "in force" if r.replaced_by is None else f"#{r.replaced_by}")
    return table


def decisions_table(title: str, set_ids: list[str], in_force: dict[str, Review]) -> Table:
    """The decision in force on each of ``set_ids`` (not reviewed: empty)."""
    from rich.markup import escape
    from rich.table import Table

    from flatqc.lifecycle.reviews import NOT_REVIEWED

    table = Table(title=title, title_justify="left")
    for column in ("set", "decision", "by", "decided (UTC)", "comment"):
        table.add_column(column)
    for set_id in set_ids:
        r = in_force.get(set_id)
        table.add_row(set_id, *((r.decision, escape(r.reviewer), f"{r.decided_at:%Y-%m-%d %H:%M:%S}",
                                 escape(r.comment or ""))
                                if r else (NOT_REVIEWED, "", "", "")))
    return table
