"""``flatqc up | watch | worker | status | backfill | alerts``: the running service and its operators' views.

Each verb imports what it uses when it runs, so that loading this module (``flatqc status --help``) costs no more than
click.
"""

from __future__ import annotations

import functools
import getpass
import json
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec

import click

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from flatqc.settings import Settings

P = ParamSpec("P")


def says_when_database_unreachable(command: Callable[P, None]) -> Callable[P, None]:
    """Wrap a command that reads the database: an unreachable database ends it with one line
    ("database unreachable: ...") and exit status 1, not a traceback."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        from sqlalchemy.exc import SQLAlchemyError

        from flatqc.logs import one_line
        from flatqc.readiness import database_unreachable

        try:
            command(*args, **kwargs)
        except SQLAlchemyError as exc:
            if not database_unreachable(exc):
                raise
            click.echo(f"database unreachable: {one_line(exc)}", err=True)
            raise SystemExit(1) from None

    return wrapper


def demo_hint(engine: Engine, verb: str) -> None:
    """First run: FLATQC_CONFIG unset, the default database holds no set, but ``make demo`` left its settings in
    DEMO_CONFIG: say (on stderr) how to look at the demo's data instead."""
    from sqlalchemy import select

    from flatqc.db import sets
    from flatqc.settings import DEMO_CONFIG

    if os.environ.get("FLATQC_CONFIG") or not DEMO_CONFIG.is_file():
        return
    with engine.connect() as conn:
        if conn.execute(select(sets.c.id).limit(1)).first() is not None:
            return
    click.secho(f"{engine.url.render_as_string()} holds no sets yet; the demo's data: "
                f"FLATQC_CONFIG={DEMO_CONFIG} flatqc {verb}", fg="yellow", err=True)


def need_redis(settings: Settings) -> str:
    from flatqc.queue import resolve_redis_url

    url = resolve_redis_url(settings)
    if not url:
        raise click.UsageError("no Redis: set FLATQC_REDIS_URL (or run `flatqc up` on this machine)")
    return url


@click.command()
@click.option("--workers", type=int, default=None, help="Worker processes (default FLATQC_WORKERS, 2).")
def up(workers: int | None) -> None:
    """Run everything here: Redis (own one unless FLATQC_REDIS_URL), the watcher, N workers. Ctrl-C stops."""
    from flatqc.console import make_console
    from flatqc.readiness import StoppedWaiting
    from flatqc.settings import Settings
    from flatqc.supervision import GaveUp, RunFolderTaken
    from flatqc.up import Service
    from qc.thresholds import ThresholdFileError

    console = make_console()  # made when the command runs: it writes to the stream of that moment
    service = Service(Settings(), workers, web=True)
    service.catch_stop_signals()
    try:
        service.start()
        reserved = service.settings.reserved_workers(service.n_workers)
        console.print(f"flatqc up: watching {service.settings.dfs_product} and {service.settings.dfs_raw}, "
                      f"{service.n_workers} workers ({reserved} for real time only), dashboard "
                      f"http://{service.settings.web_host}:{service.settings.web_port}/; Ctrl-C to stop")
        service.wait()
    except StoppedWaiting:
        service.stop()
    except (RunFolderTaken, GaveUp) as exc:
        raise click.ClickException(str(exc)) from None
    except ThresholdFileError as exc:
        raise click.ClickException(f"threshold file broken: {exc} (FLATQC_THRESHOLDS_DIR): fix it, then start "
                                   "again") from None


@click.command()
def watch() -> None:
    """Run only the watcher (FLATQC_REDIS_URL required)."""
    from flatqc.compose import service_queue
    from flatqc.readiness import StoppedWaiting, stop_on_signals, wait_for_database, wait_for_redis
    from flatqc.settings import Settings
    from flatqc.up import ensure_sqlite_folder
    from watcher.run import run_watcher

    settings = Settings()
    ensure_sqlite_folder(settings.db_url)
    stop = stop_on_signals()
    try:
        engine, redis = wait_for_database(settings.db_url, stop), wait_for_redis(need_redis(settings), stop)
    except StoppedWaiting:
        return
    run_watcher(settings, engine, service_queue(settings, redis), stop)


@click.command()
@click.option("--host", default=None, help="Address to bind (default FLATQC_WEB_HOST, 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default FLATQC_WEB_PORT, 8080).")
def web(host: str | None, port: int | None) -> None:
    """Serve the dashboard alone with waitress (reads the database, and Redis when reachable). SIGTERM or Ctrl-C
    stops it."""
    from flatqc.compose import service_queue
    from flatqc.console import make_console
    from flatqc.folders import folder_problem
    from flatqc.queue import redis_connection, resolve_redis_url
    from flatqc.readiness import StoppedWaiting, stop_on_signals, wait_for_database
    from flatqc.settings import Settings
    from flatqc.urls import masked
    from flatqc.web import WebServer
    from flatqc.web.app import create_app

    overrides: dict[str, Any] = {k: v for k, v in {"web_host": host, "web_port": port}.items() if v is not None}
    settings = Settings(**overrides)
    console = make_console()
    if settings.web_host not in ("127.0.0.1", "localhost", "::1") and not settings.web_token:
        console.print("[yellow]not on loopback and FLATQC_WEB_TOKEN unset: actions (ack, reprocess, retry) are "
                      "refused[/]")
    problem = folder_problem(settings.qc_output, write=True, create=False)
    if problem:
        console.print(f"QC output folder: {problem}: no pictures to show (FLATQC_QC_OUTPUT; /healthz reports it)",
                      style="yellow", markup=False, highlight=False)
    stop = stop_on_signals()
    url = resolve_redis_url(settings)
    try:
        engine = wait_for_database(settings.db_url, stop)
    except StoppedWaiting:
        return
    demo_hint(engine, "web")
    app = create_app(settings, engine, service_queue(settings, redis_connection(url)) if url else None)
    server = WebServer(app, settings.web_host, settings.web_port)
    console.print(f"dashboard on http://{settings.web_host}:{settings.web_port}/ (database "
                  f"{masked(settings.db_url)}); Ctrl-C stops", markup=False, highlight=False)
    while not stop.wait(1):  # back in Python each second: runs a handler whose signal another thread received
        pass
    server.shutdown()


@click.command()
@click.option("--name", default=None, help="Worker name (unique per host).")
@click.option("--burst", is_flag=True, help="Exit when the queue is empty.")
@click.option("--realtime-only", is_flag=True, help="Take real-time QC jobs only (no pictures, no backfill): a worker "
              "kept free for tonight's verdicts (what FLATQC_REALTIME_WORKERS of `flatqc up`'s workers do).")
def worker(name: str | None, burst: bool, realtime_only: bool) -> None:
    """Run one rq worker on the service's queues: real-time QC, then pictures, then backfill (FLATQC_REDIS_URL
    required)."""
    from flatqc.compose import service_queue
    from flatqc.notify import Notifier  # apprise: loaded by the commands that notify only
    from flatqc.readiness import StoppedWaiting, stop_on_signals, wait_for_database, wait_for_redis
    from flatqc.settings import Settings
    from flatqc.up import ensure_sqlite_folder
    from worker.run import run_worker

    settings = Settings()
    ensure_sqlite_folder(settings.db_url)
    stop = stop_on_signals()  # a SIGTERM while waiting for the database or Redis ends the worker
    try:
        wait_for_database(settings.db_url, stop).dispose()  # and creates the schema
        queue = service_queue(settings, wait_for_redis(need_redis(settings), stop))
    except StoppedWaiting:
        return
    run_worker(settings, queue, Notifier.from_settings(settings, queue.connection), burst=burst, name=name,
               realtime_only=realtime_only)


@click.command()
@click.option("--night", default=None, help="Show rejected files and open sets of this night (default: newest).")
@click.option("--nights", "n_nights", type=int, default=14, show_default=True, help="Nights in the summary.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.option("--files", "list_files", is_flag=True, help="List every waiting, rejected and ignored file of the "
              "night (default: a count per reason).")
@says_when_database_unreachable
def status(night: str | None, n_nights: int, as_json: bool, list_files: bool) -> None:
    """Per night: sets done/queued/running/failed/incomplete, rejected and ignored files counted by reason (each
    file with --files), waiting files; queue and workers."""
    from rich.markup import escape
    from rich.table import Table
    from sqlalchemy import select

    from flatqc.console import make_console
    from flatqc.db import connect, sets
    from flatqc.files import shown
    from flatqc.queue import redis_connection, resolve_redis_url
    from flatqc.settings import Settings
    from flatqc.status import (
        SET_COLUMNS,
        nights,
        problem_files,
        queue_status,
        repair_events,
        unscored_rows,
        waiting_files,
    )
    from flatqc.threshold_files import folder_name, folder_state

    console = make_console()
    settings = Settings()
    engine = connect(settings.db_url)
    url = resolve_redis_url(settings)
    queue = queue_status(settings, redis_connection(url) if url else None)
    summary = nights(engine, n_nights)
    repair = repair_events(engine)
    scoring = folder_state(settings, datetime.now(UTC).date())
    unscored = unscored_rows(engine)
    demo_hint(engine, "status")
    night = night or (summary[0].night if summary else None)
    problems = problem_files(engine, night)
    waiting = waiting_files(engine, night)
    by_reason = Counter((r.state, r.reason or "") for r in problems)
    reasons = [{"state": state, "reason": reason, "count": count}
               for (state, reason), count in sorted(by_reason.items(), key=lambda item: (-item[1], item[0]))]
    with engine.connect() as conn:
        open_sets = list(conn.execute(select(sets).where(sets.c.night == night,
                                                         sets.c.state.in_(("waiting", "incomplete", "failed")))))
    if as_json:
        click.echo(json.dumps({
            "nights": [asdict(n) for n in summary], "queue": vars(queue),
            "file_reasons": reasons,
            **({"files": [dict(r._mapping) for r in problems]} if list_files else {}),
            "open_sets": [{"set_id": r.set_id, "state": r.state, "reason": r.reason} for r in open_sets],
            "repair": asdict(repair),
            "waiting_reasons": dict(Counter(r.reason or "" for r in waiting)),
            **({"waiting_files": [dict(r._mapping) for r in waiting]} if list_files else {}),
            "thresholds": scoring.as_dict(), "unscored": asdict(unscored),
        }, indent=2, default=str))
        return
    table = Table(title="nights")
    for column in ("night", *SET_COLUMNS, "passed", "failed cert.", "n/a", "files rejected", "ignored",
                   "waiting", "backfill done"):
        table.add_column(column, justify="right")
    for n in summary:
        table.add_row(n.night, *(str(n.sets.get(s, 0)) for s in SET_COLUMNS),
                      *(str(n.verdicts.get(v, 0)) for v in ("passed", "failed", "not_assessable")),
                      str(n.files_rejected), str(n.files_ignored), str(n.files_waiting),
                      f"{n.backfill.done}/{n.backfill.sets}" if n.backfill.sets else "")
    console.print(table)
    if queue.reachable:
        oldest = f"{queue.oldest_waiting_s:.0f} s" if queue.oldest_waiting_s is not None else "none"
        per_queue = ", ".join(f"{name} {count}" for name, count in queue.waiting.items())
        console.print(f"queue: {queue.depth} waiting ({per_queue}), {queue.running} running, {queue.scheduled} "
                      f"scheduled retries, {queue.failed} failed; workers alive {queue.workers} (busy "
                      f"{queue.workers_busy}); oldest waiting real-time job {oldest}")
        if any(queue.restarts.values()):
            counts = ", ".join(f"{role} {n}" for role, n in queue.restarts.items())
            console.print(f"[yellow]restarts by flatqc up: {counts}; last {queue.last_restart}[/]", highlight=False)
    else:
        console.print(f"[yellow]queue: {queue.error}[/]")
    if repair.stalled:
        newest = repair.stalled[0]
        console.print(f"[yellow]stalled jobs ended in the last 24 h: {len(repair.stalled)} (newest: set "
                      f"{newest['set_id']}, {escape(newest['detail'])})[/]", highlight=False)
    for gave_up in repair.gave_up:
        console.print(f"[red]set {gave_up['set_id']}: {escape(gave_up['reason'])} (Retry on /queue)[/]",
                      highlight=False)
    for n in summary:
        if n.backfill.waiting:
            console.print(f"night {n.night} {n.backfill}")
    for row in open_sets:
        console.print(f"set {row.set_id} [bold]{row.state}[/]: {row.reason or ''}")
    if scoring.in_force is not None:
        console.print(f"thresholds in force tonight ({scoring.night}): {scoring.in_force.name} (folder "
                      f"{folder_name(scoring.folder)})", markup=False, highlight=False)
    else:
        console.print(f"[red]thresholds broken: {escape(scoring.error or '')}; sets are stored without scores until "
                      "it is fixed (flatqc thresholds)[/]", highlight=False)
    if unscored.rows:
        console.print(f"[yellow]{unscored.rows} QC1 rows not scored (nights {unscored.first_night}.."
                      f"{unscored.last_night}): flatqc rescore --from {unscored.first_night} --to "
                      f"{unscored.last_night}[/]", highlight=False)
    for reason, count in Counter(r.reason or "not grouped yet" for r in waiting).most_common():
        console.print(f"{count:6d} waiting  {reason}", markup=False, highlight=False)
    for entry in reasons:
        console.print(f"{entry['count']:6d} {entry['state']:8s} {entry['reason']}", markup=False, highlight=False)
    if list_files:
        for row in (*waiting, *problems):
            console.print(f"{row.state:8s} {shown(row.path)}: {row.reason}", markup=False, highlight=False)
    elif problems:
        console.print(f"({len(problems)} files; --files lists them)")


def night_folders(settings: Settings, night: str) -> list[Path]:
    return [*(settings.dfs_product / t / night for t in settings.watched_raw_types), settings.dfs_raw / night]


@click.command()
@click.option("--from", "date_from", type=click.DateTime(["%Y-%m-%d"]), required=True, help="First night.")
@click.option("--to", "date_to", type=click.DateTime(["%Y-%m-%d"]), required=True, help="Last night (inclusive).")
@click.option("--force", is_flag=True, help="Reprocess sets that are already done, failed or rejected.")
@says_when_database_unreachable
def backfill(date_from: date, date_to: date, force: bool) -> None:
    """(Re)process the nights FROM..TO through the backfill queue (taken by workers only when no job of tonight
    waits): record their files, queue complete sets."""
    from rich.progress import Progress
    from sqlalchemy import select

    from flatqc.compose import service_queue
    from flatqc.console import make_console
    from flatqc.db import connect, sets
    from flatqc.files import walk_files
    from flatqc.lifecycle import TransitionRefused
    from flatqc.lifecycle import sets as set_lifecycle
    from flatqc.lifecycle.sets import SetState
    from flatqc.queue import Lane, redis_connection
    from flatqc.settings import Settings
    from watcher.core import BATCH, Watcher

    console = make_console()
    settings = Settings()
    engine = connect(settings.db_url)
    queue = service_queue(settings, redis_connection(need_redis(settings)))
    watcher = Watcher(settings, engine, queue, lane=Lane.BACKFILL)
    days = [(date_from + timedelta(days=i)).strftime("%Y-%m-%d") for i in range((date_to - date_from).days + 1)]
    paths = [p for night in days for folder in night_folders(settings, night) if folder.is_dir()
             for p in walk_files(folder)]
    with Progress(console=console) as progress:
        task = progress.add_task("recording files", total=len(paths))
        for start in range(0, len(paths), BATCH):
            watcher.record_paths(paths[start:start + BATCH])
            progress.advance(task, len(paths[start:start + BATCH]))
    forced = 0
    if force:
        with engine.connect() as conn:
            rows = list(conn.execute(select(sets).where(sets.c.night.in_(days), sets.c.state.in_(
                (SetState.DONE, SetState.FAILED, SetState.REJECTED)))))
        for row in rows:
            try:
                with engine.begin() as conn:
                    job_id = set_lifecycle.requeue(conn, row, "backfill --force", new_job=True, lane=Lane.BACKFILL)
            except TransitionRefused as refused:  # it moved since it was read
                console.print(f"not queued again: {refused}")
            else:
                forced += watcher.enqueue(row.version, job_id)
    retrying = len(watcher.settler.noticed)
    console.print(f"backfill {days[0]}..{days[-1]}: {len(paths)} files looked at, "
                  f"{forced} done sets queued again" + ("" if force else " (use --force to reprocess done sets)")
                  + (f"; {retrying} files hit a transient fault and were not recorded: run again" if retrying else ""))


@click.group(invoke_without_command=True)
@click.option("--open", "only_open", is_flag=True, help="Only open alerts.")
@click.pass_context
@says_when_database_unreachable
def alerts(ctx: click.Context, only_open: bool) -> None:
    """List alerts (failed certification) and warnings (trend limits); `flatqc alerts ack ID` acknowledges one."""
    if ctx.invoked_subcommand:
        return
    from rich.table import Table

    from flatqc import ledger
    from flatqc.console import make_console
    from flatqc.db import ALERT, connect, findings_from_json
    from flatqc.lifecycle.alerts import delivery_outcome
    from flatqc.settings import Settings
    from qc.certify import sentence

    console = make_console()
    engine = connect(Settings().db_url)
    demo_hint(engine, "alerts")
    table = Table(title="alerts")
    for column in ("id", "kind", "state", "night", "set", "setting", "reasons", "notified", "by"):
        table.add_column(column)
    with engine.connect() as conn:
        rows = ledger.alerts_newest_first(conn, "open" if only_open else None)
        sent = ledger.deliveries_of(conn, [row.id for row in rows])
        for row in rows:
            notified = "\n".join(map(delivery_outcome, sent[row.id])) or row.notify_error or (
                "yes" if row.notified_at else "no")
            reasons = "; ".join(map(sentence, findings_from_json(row.reasons)))
            table.add_row(str(row.id), row.severity or ALERT, row.state, row.night, row.set_id, row.setting_key,
                          reasons, notified, row.acknowledged_by or "")
    console.print(table)


@alerts.command("ack")
@click.argument("alert_id", type=int)
@click.option("--by", "by", default=getpass.getuser, show_default="current user", help="Who acknowledges.")
@click.option("--comment", default=None)
@says_when_database_unreachable
def ack(alert_id: int, by: str, comment: str | None) -> None:
    """Acknowledge open alert ALERT_ID."""
    from flatqc.console import make_console
    from flatqc.db import connect
    from flatqc.lifecycle import TransitionRefused
    from flatqc.lifecycle import alerts as alert_lifecycle
    from flatqc.settings import Settings

    console = make_console()
    engine = connect(Settings().db_url)
    try:
        with engine.begin() as conn:
            alert_lifecycle.acknowledge(conn, alert_id, by, comment)
    except TransitionRefused:
        raise click.UsageError(f"no open alert #{alert_id}") from None
    console.print(f"alert #{alert_id} acknowledged by {by}")
