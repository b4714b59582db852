"""The watcher under faults: odd trees, a database locked past its busy timeout, SIGKILL at every boundary of the
watcher and the job, a worker that stalls and comes back after its set was queued again, and a flood of 10,000 small
files."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from redis import Redis
from rq.registry import FailedJobRegistry, StartedJobRegistry
from sqlalchemy import func, select

from bench.bench_flood import ledger_count, write_flood
from flatqc.batch import process_paths
from flatqc.cli import main
from flatqc.db import alerts, crires_flat, files, job_events, make_engine, sets
from flatqc.faults import STALL_HOOK
from flatqc.files import path_from_text, shown
from flatqc.queue import job_queue
from flatqc.settings import settings_env
from flatqc.web.app import create_app
from qc.synth import SynthSet
from tests.service_helpers import chosen, deliver_set, wait_for, watcher_rig, work_here
from tests.test_watcher import queue_one_set
from watcher.core import Watcher
from watcher.run import run_watcher
from worker import jobs

pytestmark = pytest.mark.service

NIGHT = "2010-05-12"
BAD_NAME = os.fsdecode(b"bad\xff\xfe.fits")
WATCHER_POINTS = ("intake-before-commit", "intake-after-commit", "between-intake-and-regroup",
                  "regroup-before-commit", "regroup-after-commit", "rescan-done", "repair-done")
JOB_POINTS = ("job-started", "job-before-commit", "job-after-commit")


@pytest.fixture()
def rig(synth_night: Path, tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict]:
    with watcher_rig(synth_night, tmp_path, redis_url, monkeypatch, stale_job_s=1.0, overdue_retry_s=0.5) as made:
        yield made


def rounds(rig: dict, n: int = 3, step_s: float = 100.0) -> None:
    """``n`` full rounds of the watcher, the hand clock moved by ``step_s`` before each."""
    for _ in range(n):
        rig["clock"].now += step_s
        rig["watcher"].full_round()


def ledger(engine: object, *columns: object) -> list:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        return list(conn.execute(select(*columns or (files,))))


def set_rows(engine: object, set_id: str) -> list:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        return list(conn.execute(select(sets).where(sets.c.set_id == set_id,
                                                    ~sets.c.version.startswith("pending-"))))


def queued_events(engine: object, version: str) -> list[str]:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        return list(conn.execute(select(job_events.c.event).where(job_events.c.version == version)
                                 .order_by(job_events.c.id)).scalars())


# -- odd trees -----------------------------------------------------------------------------------------------------
def odd_tree(tree: Path, night: Path) -> tuple[SynthSet, dict[str, tuple[Path, str]]]:
    """The good set (master under an undecodable name, one raw inside a folder called ``x.fits``) amid odd
    entries; returns the set and ``{name: (path, expected reason)}`` of the odd ones."""
    entry = chosen(night)
    placed = deliver_set(night, tree, entry)
    folder = tree / "dfs_product" / "DARK" / NIGHT
    master = placed[entry.master].rename(folder / BAD_NAME)
    raw = placed[entry.raws[0]]
    (folder / "x.fits").mkdir()
    raw.rename(folder / "x.fits" / raw.name)
    (folder / "loop_a.fits").symlink_to(folder / "loop_b.fits")
    (folder / "loop_b.fits").symlink_to(folder / "loop_a.fits")
    (folder / "self.fits").symlink_to(folder / "self.fits")
    (folder / "dangling.fits").symlink_to(folder / "nowhere.fits")
    os.mkfifo(folder / "pipe.fits")
    locked = folder / "locked_dark.fits"
    shutil.copy(night / "dfs_product" / "DARK" / NIGHT / "crires_spec_dark_master.fits", locked)
    locked.chmod(0)
    odd = {"loop_a": (folder / "loop_a.fits", "symlink loop"), "loop_b": (folder / "loop_b.fits", "symlink loop"),
           "self": (folder / "self.fits", "symlink loop"),
           "dangling": (folder / "dangling.fits", "dangling symlink"),
           "pipe": (folder / "pipe.fits", "not a regular file (FIFO)"),
           "locked": (locked, "CALPRO_DARK" if os.geteuid() == 0 else "Permission denied")}
    assert master.exists()
    return entry, odd


def test_odd_entries_are_recorded_with_reasons_and_the_good_set_is_processed(rig: dict) -> None:
    entry, odd = odd_tree(rig["tree"], rig["night"])
    rounds(rig)  # nothing raises: each phase is isolated, but none may even fail
    assert not rig["watcher"].errors.seen("intake") and not rig["watcher"].errors.seen("rescan")
    by_path = {path_from_text(r.path): r for r in ledger(rig["engine"])}
    for name, (path, reason) in odd.items():
        row = by_path[path]
        assert row.state in ("ignored", "rejected") and reason in row.reason, name
    bad = by_path[rig["tree"] / "dfs_product" / "DARK" / NIGHT / BAD_NAME]
    assert bad.path.isascii() and path_from_text(bad.path) == rig["tree"] / "dfs_product" / "DARK" / NIGHT / BAD_NAME
    assert shown(bad.path).endswith("bad\\xff\\xfe.fits") and bad.kind == "master"
    ((version, state),) = [(r.version, r.state) for r in set_rows(rig["engine"], entry.set_id)]
    assert state == "queued" and rig["queue"].count == 1
    assert jobs.run_set_qc(version)["state"] == "done"
    with rig["engine"].connect() as conn:
        assert conn.execute(select(func.count()).select_from(crires_flat)).scalar() == 4
    assert bad.id in {r.id for r in ledger(rig["engine"]) if r.state == "done"}
    before = ledger(rig["engine"], files.c.id, files.c.state, files.c.last_seen)
    rounds(rig)
    assert rig["watcher"].rescan() == 0  # the ledger agrees with the disk: nothing is taken again
    assert ledger(rig["engine"], files.c.id, files.c.state, files.c.last_seen) == before
    assert rig["queue"].count == 1 and len(set_rows(rig["engine"], entry.set_id)) == 1


def test_flatqc_process_over_an_odd_tree(rig: dict) -> None:
    entry, odd = odd_tree(rig["tree"], rig["night"])
    settings = rig["settings"]
    report = process_paths([settings.dfs_product, settings.dfs_raw], settings, rig["engine"])
    assert [flatset.set_id for flatset, _ in report.done] == [entry.set_id]
    notes = {note.path: note for note in report.files}
    for name, (path, reason) in odd.items():
        assert notes[path].state in ("ignored", "rejected") and reason in notes[path].reason, name
    with rig["engine"].connect() as conn:
        assert conn.execute(select(func.count()).select_from(crires_flat)).scalar() == 4


# -- a database locked longer than the busy timeout ----------------------------------------------------------------
def test_a_database_locked_past_its_busy_timeout_delays_intake_and_rejects_nothing(rig: dict, tmp_path: Path) -> None:
    short = make_engine(rig["settings"].db_url, busy_timeout_s=0.2)
    watcher = Watcher(rig["settings"], short, rig["jobs"], clock=rig["clock"])
    rig["watcher"] = watcher
    entry = chosen(rig["night"])
    placed = deliver_set(rig["night"], rig["tree"], entry)
    holder = sqlite3.connect(tmp_path / "flatqc.db", isolation_level=None, timeout=5)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    try:
        for _ in range(4):
            rounds(rig, 1)
            assert ledger(rig["engine"]) == []  # nothing could be recorded, nothing was rejected
        assert len(watcher.settler.noticed) == len(placed)  # every file waits for its next try
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    rounds(rig, 2, step_s=RETRY_STEP_S)
    rows = ledger(rig["engine"])
    assert {path_from_text(r.path) for r in rows} == set(placed.values())
    assert {r.state for r in rows} == {"queued"}
    ((version, state),) = [(r.version, r.state) for r in set_rows(rig["engine"], entry.set_id)]
    assert state == "queued" and rig["queue"].count == 1 and queued_events(rig["engine"], version) == ["queued"]
    short.dispose()


RETRY_STEP_S = 400.0
"""Longer than the longest back-off of a file that hit a transient fault (watcher.core.RETRY_MAX_S)."""


# -- SIGKILL at every boundary -------------------------------------------------------------------------------------
def child_env(settings: object, redis_url: str, kill_at: str | None = None) -> dict[str, str]:
    """The environment of a ``flatqc`` child process of this service (with the fault hook if ``kill_at``)."""
    env = os.environ | settings_env(settings) | {  # type: ignore[arg-type]
        "FLATQC_REDIS_URL": redis_url, "FLATQC_FILE_SETTLE_S": "0.2", "FLATQC_RESCAN_INTERVAL_S": "1",
        "FLATQC_STALE_JOB_S": "1", "FLATQC_TRUNCATED_AFTER_S": "3"}
    env.pop("FLATQC_FAULT_KILL_AT", None)
    return env | ({"FLATQC_FAULT_KILL_AT": kill_at} if kill_at else {})


def flatqc(*args: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "flatqc", *args], env=env, stdout=out, stderr=out,
                                cwd=Path(__file__).parents[1])


def wait_exit(process: subprocess.Popen[bytes], timeout_s: float) -> int:
    try:
        return process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError(f"{process.args} did not end within {timeout_s:.0f} s") from None


def queued_once(engine: object, redis: Redis, settings: object, set_id: str) -> bool:
    """The set's one version is queued, has exactly one job in the queue and one 'queued' event."""
    rows = set_rows(engine, set_id)
    if len(rows) != 1 or rows[0].state != "queued":
        return False
    queue = job_queue(settings, redis)  # type: ignore[arg-type]
    return queue.get_job_ids() == [rows[0].job_id] and queued_events(engine, rows[0].version).count("queued") == 1


@pytest.mark.slow
@pytest.mark.parametrize("point", WATCHER_POINTS)
def test_a_watcher_killed_at_a_boundary_queues_the_set_exactly_once_after_restart(
        rig: dict, redis_url: str, tmp_path: Path, point: str) -> None:
    entry = chosen(rig["night"])
    deliver_set(rig["night"], rig["tree"], entry)
    log = tmp_path / "watch.log"
    killed = flatqc("watch", env=child_env(rig["settings"], redis_url, point), log=log)
    assert wait_exit(killed, 30) == -9, log.read_text()
    watcher = flatqc("watch", env=child_env(rig["settings"], redis_url), log=log)
    try:
        wait_for(lambda: queued_once(rig["engine"], rig["redis"], rig["settings"], entry.set_id), 20,
                 f"the set queued once after a kill at {point}", interval_s=0.2)
        later = rig["tree"] / "dfs_product" / "DARK" / NIGHT / "later_notes.fits"
        later.write_text("shift notes\n")  # recorded by a later round, which must not queue the set again
        wait_for(lambda: any(r.path == str(later) for r in ledger(rig["engine"])), 20, "a later round",
                 interval_s=0.2)
    finally:
        watcher.terminate()
        wait_exit(watcher, 15)
    assert queued_once(rig["engine"], rig["redis"], rig["settings"], entry.set_id)
    assert {r.state for r in ledger(rig["engine"]) if "later_notes" not in r.path} == {"queued"}


@pytest.mark.slow
@pytest.mark.parametrize("point", JOB_POINTS)
def test_a_worker_killed_at_a_boundary_does_the_set_exactly_once(rig: dict, redis_url: str, tmp_path: Path,
                                                                  point: str) -> None:
    """The work-horse of a ``flatqc worker`` process dies (SIGKILL) at ``point``; the repair pass of a later watcher
    round requeues a set whose job went silent, and a second worker finishes it: one result, 4 QC1 rows, one
    'finished' event."""
    entry = chosen(rig["night"])
    deliver_set(rig["night"], rig["tree"], entry)
    rounds(rig, 2)
    ((version, state),) = [(r.version, r.state) for r in set_rows(rig["engine"], entry.set_id)]
    assert state == "queued"
    log = tmp_path / "worker.log"
    first = flatqc("worker", "--burst", env=child_env(rig["settings"], redis_url, point), log=log)
    wait_exit(first, 60)
    queue = rig["queue"]
    # rq still holds the job: running, failed, scheduled for its retry, or (the retry due before the burst worker
    # left, moved by its scheduler) waiting again
    assert (StartedJobRegistry(queue=queue).count + FailedJobRegistry(queue=queue).count
            + len(queue.scheduled_job_registry) + queue.count) >= 1 or point == "job-after-commit", log.read_text()
    if point != "job-after-commit":
        assert set_rows(rig["engine"], entry.set_id)[0].state in ("running", "queued", "failed")

    def repaired() -> bool:
        rig["clock"].now += 100
        rig["watcher"].full_round()
        return set_rows(rig["engine"], entry.set_id)[0].state == "done" or queue.count >= 1

    wait_for(repaired, 20, f"the repair pass after a kill at {point}", interval_s=0.5)
    work_here(rig["settings"], redis_url)  # the second worker: a process of its own would prove nothing more
    (row,) = set_rows(rig["engine"], entry.set_id)
    assert row.state == "done", (row.state, row.reason, log.read_text())
    with rig["engine"].connect() as conn:
        assert conn.execute(select(func.count()).select_from(crires_flat)).scalar() == 4
    assert queued_events(rig["engine"], version).count("finished") == 1


# -- a late writer: fencing ---------------------------------------------------------------------------------------
def press_reprocess(rig: dict, set_id: str) -> None:
    """Press Reprocess on the set's page of a dashboard of this service."""
    client = create_app(rig["settings"], rig["engine"], rig["jobs"]).test_client()
    with client.session_transaction() as session:
        session["csrf"] = "a-token"
    assert client.post(f"/sets/{set_id}/reprocess", data={"csrf_token": "a-token"}).status_code == 302
    with client.session_transaction() as session:
        assert [kind for kind, _ in session["_flashes"]] == ["done"], session["_flashes"]


def qc1_and_alerts(engine: object) -> tuple[list, list]:
    """``(set_id, detector, processed_at)`` of every QC1 row and ``(id, severity, state, updated_at)`` of every alert
    and warning."""
    with engine.connect() as conn:  # type: ignore[attr-defined]
        return (list(conn.execute(select(crires_flat.c.set_id, crires_flat.c.detector, crires_flat.c.processed_at)
                                  .order_by(crires_flat.c.detector))),
                list(conn.execute(select(alerts.c.id, alerts.c.severity, alerts.c.state, alerts.c.updated_at))))


def test_reprocess_pressed_while_the_job_runs_commits_nothing_of_that_job(
        rig: dict, redis_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A failing set: the job computes its verdict while Reprocess is pressed; the job's QC1 rows, alert and state
    are not committed (one log line says so), the reprocessing job's are."""
    entry = chosen(rig["night"], "snr_fail")
    deliver_set(rig["night"], rig["tree"], entry)
    rounds(rig, 2)
    ((version, state),) = [(r.version, r.state) for r in set_rows(rig["engine"], entry.set_id)]
    assert state == "queued"
    compute = jobs.compute_qc

    def reprocess_pressed_meanwhile(*args: object) -> object:
        press_reprocess(rig, entry.set_id)
        return compute(*args)

    monkeypatch.setattr(jobs, "compute_qc", reprocess_pressed_meanwhile)
    with caplog.at_level(logging.INFO, logger="worker.jobs"):
        assert jobs.run_set_qc(version)["state"] == "queued"
    (line,) = [r for r in caplog.records if r.name == "worker.jobs"]
    assert line.levelno == logging.WARNING and "nothing of this attempt was committed" in line.getMessage()
    assert qc1_and_alerts(rig["engine"]) == ([], [])
    assert set_rows(rig["engine"], entry.set_id)[0].state == "queued"
    assert queued_events(rig["engine"], version) == ["queued", "started", "queued"]
    monkeypatch.setattr(jobs, "compute_qc", compute)
    work_here(rig["settings"], redis_url)  # the watcher's job (which now does the set) and the reprocessing one
    (row,) = set_rows(rig["engine"], entry.set_id)
    rows, raised = qc1_and_alerts(rig["engine"])
    assert (row.state, row.verdict, len(rows)) == ("done", "failed", 4)
    assert [a.state for a in raised if a.severity == "alert"] == ["open"]
    assert queued_events(rig["engine"], version).count("finished") == 1


def state_of(pid: int) -> str | None:
    """The state letter of process ``pid`` (``T`` stopped, ``Z`` ended, not reaped yet), None if it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


def test_pictures_drawn_while_their_set_is_processed_again_are_drawn_again(
        rig: dict, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The picture job of a done set draws while Reprocess is pressed and the set is done again: its pictures are
    not marked done for the attempt that lost the set; it draws them again for the one that holds it."""
    entry = chosen(rig["night"])
    deliver_set(rig["night"], rig["tree"], entry)
    rounds(rig, 2)
    ((version, _),) = [(r.version, r.state) for r in set_rows(rig["engine"], entry.set_id)]
    assert jobs.run_set_qc(version)["state"] == "done"
    draw = jobs.draw_pictures
    drawn_for: list[int] = []

    def processed_again_meanwhile(*args: object) -> object:
        drawn_for.append(set_rows(rig["engine"], entry.set_id)[0].token)
        if len(drawn_for) == 1:
            press_reprocess(rig, entry.set_id)
            assert jobs.run_set_qc(version)["state"] == "done"
        return draw(*args)

    monkeypatch.setattr(jobs, "draw_pictures", processed_again_meanwhile)
    with caplog.at_level(logging.INFO, logger="worker.jobs"):
        assert "cover" in jobs.draw_set_pictures(version)["pictures"]
    (row,) = set_rows(rig["engine"], entry.set_id)
    assert drawn_for == [row.token - 2, row.token] and row.pictures == "done"
    assert [r.getMessage() for r in caplog.records if "pictures drawn again" in r.getMessage()] != []


def stalled_child(process: subprocess.Popen[bytes], timeout_s: float) -> int:
    """The pid of the child of ``process`` (a work-horse) that stopped itself at a ``FLATQC_FAULT_STOP_AT`` point."""
    found: list[int] = []

    def stalled() -> bool:
        path = Path(f"/proc/{process.pid}/task/{process.pid}/children")
        found[:] = [pid for pid in map(int, path.read_text().split()) if state_of(pid) == "T"]
        return bool(found)

    wait_for(stalled, timeout_s, "the work-horse to stall", interval_s=0.1)
    return found[0]


@pytest.mark.slow
@pytest.mark.parametrize("queued_again_by", ["repair", "reprocess"])
def test_a_stalled_worker_that_comes_back_commits_nothing(rig: dict, redis_url: str, tmp_path: Path,
                                                          queued_again_by: str) -> None:
    """Issue 20: a ``flatqc worker`` stalls once its job has started the set. The set is queued again: by the repair
    pass (the whole worker stopped, so no heartbeats) or by Reprocess (only the work-horse stopped), and another
    worker does it. When the stalled one resumes and finishes, nothing of it is committed: the second attempt's
    QC1 rows (``processed_at``), state and events stand, and the first worker's log says so in one line."""
    entry = chosen(rig["night"])
    deliver_set(rig["night"], rig["tree"], entry)
    rounds(rig, 2)
    ((version, state),) = [(r.version, r.state) for r in set_rows(rig["engine"], entry.set_id)]
    assert state == "queued"
    log = tmp_path / "worker.log"
    first = flatqc("worker", "--burst", env=child_env(rig["settings"], redis_url) | {STALL_HOOK: "job-started"},
                   log=log)
    horse = stalled_child(first, 60)
    stopped = [horse]
    try:
        if queued_again_by == "repair":
            os.kill(first.pid, signal.SIGSTOP)
            stopped.append(first.pid)
            time.sleep(rig["settings"].stale_job_s + 1.0)  # the length of the stall, not a wait
            rounds(rig, 1)
            assert "requeued" in queued_events(rig["engine"], version)
        else:
            press_reprocess(rig, entry.set_id)
        assert set_rows(rig["engine"], entry.set_id)[0].state == "queued"
        work_here(rig["settings"], redis_url)  # the second attempt
        (done,) = set_rows(rig["engine"], entry.set_id)
        second = qc1_and_alerts(rig["engine"])
        assert done.state == "done" and len(second[0]) == 4
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
    wait_for(lambda: state_of(horse) in (None, "Z"), 60, "the stalled attempt to end", interval_s=0.1)
    first.kill()  # rq's teardown after its worker was stopped may wait a minute for its pub/sub thread
    first.wait()
    assert qc1_and_alerts(rig["engine"]) == second
    (row,) = set_rows(rig["engine"], entry.set_id)
    assert (row.state, row.token, row.finished_at) == ("done", done.token, done.finished_at)
    assert queued_events(rig["engine"], version).count("finished") == 1
    assert log.read_text().count("nothing of this attempt was committed") == 1, log.read_text()


# -- a flood -------------------------------------------------------------------------------------------------------
FLOOD = 10_000
FLOOD_BUDGET_S = 30.0
"""The issue's acceptance criterion: 10,000 files arriving at once are all in the ledger within 30 s."""


@pytest.mark.slow
def test_a_flood_of_small_files_reaches_the_ledger_in_time_and_status_sums_it_up(
        rig: dict, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = rig["settings"].model_copy(update={"file_settle_s": 1.0, "truncated_after_s": 10.0,
                                                  "rescan_interval_s": 60.0})
    stop, caught_up = threading.Event(), threading.Event()
    thread = threading.Thread(target=run_watcher, args=(settings, rig["engine"], rig["jobs"], stop, caught_up),
                              daemon=True)
    thread.start()
    try:  # observing (its folders exist a moment before: files written then would wait for the 60 s rescan)
        assert caught_up.wait(30), "the watcher did not finish its start-up round"
        started = time.monotonic()
        write_flood(rig["tree"], FLOOD)
        wait_for(lambda: ledger_count(rig["engine"]) >= FLOOD, FLOOD_BUDGET_S - (time.monotonic() - started),
                 f"{FLOOD} files in the ledger", interval_s=0.2)
    finally:
        stop.set()
        thread.join(30)
    assert ledger_count(rig["engine"]) == FLOOD
    states = dict(ledger_states(rig["engine"]))
    assert states == {"waiting": 4000, "ignored": 5000, "rejected": 1000}

    runner = CliRunner()
    text = runner.invoke(main, ["status"]).output
    assert "  5000 ignored  not a flat product" in text and "  1000 rejected not a FITS file" in text
    assert "other_00000.fits" not in text and len(text.splitlines()) < 40  # counted by reason, not listed
    listed = runner.invoke(main, ["status", "--files"]).output
    assert "other_00000.fits" in listed and "junk_00009.fits" in listed
    summary = json.loads(runner.invoke(main, ["status", "--json"]).output)
    assert {(r["state"], r["count"]) for r in summary["file_reasons"]} == {("ignored", 5000), ("rejected", 1000)}
    assert "files" not in summary
    assert len(json.loads(runner.invoke(main, ["status", "--json", "--files"]).output)["files"]) == 6000


def ledger_states(engine: object) -> list[tuple[str, int]]:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        return list(conn.execute(select(files.c.state, func.count()).group_by(files.c.state)))


# -- a file that may not be read (EACCES) --------------------------------------------------------------------------
@pytest.fixture()
def open_rig(synth_night: Path, redis_url: str, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict]:
    """A rig on PostgreSQL whose tree uid 65534 can walk (tmp_path is root's alone), for work done as that user."""
    base = Path(tempfile.mkdtemp(prefix="flatqc-unreadable-"))
    base.chmod(0o755)
    try:
        with watcher_rig(synth_night, base, redis_url, monkeypatch, db_url=pg_url, transient_retry_s=0.0,
                         unreadable_give_up_s=2.0) as made:
            yield made
    finally:
        shutil.rmtree(base)


def as_nobody(rig: dict, work: Callable[[], object]) -> str:
    """``work()`` in a forked child running as uid 65534 (root reads any file whatever its mode); returns what it
    returned, or the name of the exception it raised."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its own connections, then nobody; answer through the pipe, skip pytest's clean-up
        try:
            rig["engine"].dispose(close=False)
            jobs.fresh_connections_in_child()
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            try:
                answer = str(work())
            except Exception as exc:  # noqa: BLE001 - the parent asserts on it
                answer = type(exc).__name__
            os.write(write_end, answer.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as answer:
        said = answer.read()
    os.waitpid(pid, 0)
    return said


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="drops to uid 65534, which needs root")


@needs_root
def test_a_member_unreadable_for_a_while_is_retried_and_never_superseded(open_rig: dict) -> None:
    """chmod 000 on a queued member: the watcher (as nobody) keeps the known version and notes the moment; the job
    (as nobody) fails transient, not final; readable again, the repair pass queues it and it is done."""
    rig = open_rig
    entry, first, master = queue_one_set(rig)
    master.chmod(0)
    watcher = rig["watcher"]

    def watcher_sees_it() -> object:
        watcher.notice(master)  # the IN_ATTRIB event of the chmod
        rig["clock"].now += 100
        watcher.tick()
        return sorted(watcher.settler.noticed)

    assert as_nobody(rig, watcher_sees_it) == "[]"  # nothing left to retry: the known version stays
    with rig["engine"].connect() as conn:
        (row,) = conn.execute(select(files).where(files.c.path == str(master))).all()
    assert row.state == "queued" and row.unreadable_since is not None
    assert as_nobody(rig, lambda: jobs.run_set_qc(first)) == "MemberUnreadable"
    (row,) = set_rows(rig["engine"], entry.set_id)
    assert (row.state, row.transient) == ("failed", True) and "Permission denied" in row.reason

    master.chmod(0o644)
    rig["watcher"].repair()
    assert [r.state for r in set_rows(rig["engine"], entry.set_id)] == ["queued"]
    assert as_nobody(rig, lambda: jobs.run_set_qc(first)["state"]) == "done"
    with rig["engine"].connect() as conn:
        assert conn.execute(select(files.c.unreadable_since).where(files.c.path == str(master))).scalar() is None


@needs_root
def test_a_member_unreadable_past_the_give_up_time_rejects_its_set(open_rig: dict) -> None:
    rig = open_rig
    entry, first, master = queue_one_set(rig)
    master.chmod(0)
    assert as_nobody(rig, lambda: jobs.run_set_qc(first)) == "MemberUnreadable"
    time.sleep(2.1)  # FLATQC_UNREADABLE_GIVE_UP_S
    rig["watcher"].repair()
    assert as_nobody(rig, lambda: jobs.run_set_qc(first)["state"]) == "rejected"
    (row,) = set_rows(rig["engine"], entry.set_id)
    assert row.state == "rejected" and re.fullmatch(
        rf"member {master.name} cannot be read: Permission denied for \d+ s", row.reason)


@needs_root
def test_a_new_file_unreadable_past_the_give_up_time_is_rejected_by_the_watcher(open_rig: dict) -> None:
    rig = open_rig
    entry = chosen(rig["night"])
    placed = deliver_set(rig["night"], rig["tree"], entry)
    master = placed[entry.master]
    master.chmod(0)
    watcher = rig["watcher"]

    def rounds_as_nobody() -> object:
        watcher.rescan()
        states = []
        for _ in range(4):
            rig["clock"].now += 100
            watcher.tick()
            with rig["engine"].connect() as conn:
                states.append(conn.execute(select(files.c.state).where(files.c.path == str(master))).scalar())
        return states

    # not recorded at the first try, rejected at the first try 100 s (> FLATQC_UNREADABLE_GIVE_UP_S) later
    assert as_nobody(rig, rounds_as_nobody) == "[None, 'rejected', 'rejected', 'rejected']"
    with rig["engine"].connect() as conn:
        reason = conn.execute(select(files.c.reason).where(files.c.path == str(master))).scalar()
    assert reason == "cannot be read: Permission denied for 100 s"
