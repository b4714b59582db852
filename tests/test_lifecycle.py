"""The set life cycle's refusals, on the ledger alone (SQLite and PostgreSQL): every transition checks the state it
starts from and the token of the attempt that asks; a refusal raises and, left to leave the transaction, commits
nothing of it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.engine import Row

from flatqc.db import QC1_TABLES, alerts, connect, job_events, replace_qc1_rows, sets, utcnow
from flatqc.lifecycle import StaleAttempt, TransitionRefused
from flatqc.lifecycle import sets as set_lifecycle
from flatqc.lifecycle.alerts import record_alert
from flatqc.lifecycle.sets import Members, SetKeys, SetState
from qc.records import Certification, Finding, FindingKind, SetResult

KEYS = SetKeys("s1", "2010-05-12", "crires", "1090.400_25.000_Halogen", 3)
MEMBERS = Members(("m.fits", "b.fits", "r.fits"), ("a" * 64, "b" * 64, "c" * 64))
NEWER = Members(("m.fits", "b.fits", "r.fits"), ("d" * 64, "b" * 64, "c" * 64))


@pytest.fixture()
def engine(db_url: str) -> Iterator[Engine]:
    """A ledger holding one claimed (queued) set version, MEMBERS."""
    engine = connect(db_url)
    with engine.begin() as conn:
        set_lifecycle.claim_complete(conn, KEYS, MEMBERS, [], None)
    yield engine
    engine.dispose()


def started(engine: Engine) -> Row:
    """An attempt takes the set: the row (with its token) it holds it by."""
    with engine.begin() as conn:
        return set_lifecycle.start(conn, MEMBERS.version, "job-1")


def now(engine: Engine) -> Row:
    with engine.connect() as conn:
        return conn.execute(select(sets).where(sets.c.version == MEMBERS.version)).one()


def requeued(engine: Engine, why: str = "reprocess requested in the dashboard") -> Row:
    """The set queued again as Reprocess does (or the repair pass, which keeps the job id)."""
    with engine.begin() as conn:
        set_lifecycle.requeue(conn, now(engine), why, new_job=True)
    return now(engine)


def events(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(job_events.c.event).where(job_events.c.version == MEMBERS.version)
                                 .order_by(job_events.c.id)).scalars())


def failing_result() -> SetResult:
    return SetResult(set_id=KEYS.set_id, night="2010-05-12", profile="crires", setting_key="1090.400_25.000_Halogen",
                     raw_type="FLAT", n_raw=3, dit=10.0, ndit=1, window_ny=512, window_starty=1, mjd_obs=55329.1,
                     reference=None, reference_note="", detectors=[],
                     certification=Certification("failed", (), (
                         Finding(FindingKind.CERTIFICATION, "median_snr", 2, 100.0, "<=", 250.0),)))


def qc1_row(detector: int) -> dict:
    return {"set_id": KEYS.set_id, "version": MEMBERS.version, "night": "2010-05-12", "setting_key": "k",
            "n_raw": 3, "raw_type": "FLAT", "detector": detector, "certified": False, "verdict": "failed",
            "master_file": "m.fits", "processed_at": utcnow()}


def test_start_takes_a_new_token_and_refuses_a_finished_set(engine: Engine) -> None:
    claimed = now(engine)
    row = started(engine)
    assert (row.state, row.token, row.attempts) == (SetState.RUNNING, claimed.token + 1, 1)
    with engine.begin() as conn:
        set_lifecycle.finish(conn, row, "job-1", "passed", "FLAT")
    with pytest.raises(TransitionRefused, match="is done; not moved to running") as refused:
        started(engine)
    assert refused.value.current == SetState.DONE and not isinstance(refused.value, StaleAttempt)
    assert (now(engine).state, now(engine).token, now(engine).attempts) == (SetState.DONE, row.token, 1)


def test_reprocess_while_the_job_runs_fences_the_job_off_and_its_transaction_commits_nothing(engine: Engine) -> None:
    """The job writes its rows and alert, then moves the set: refused, so none of it is committed."""
    attempt = started(engine)
    queued_again = requeued(engine)
    assert queued_again.state == SetState.QUEUED and queued_again.token == attempt.token + 1
    table = QC1_TABLES["crires_flat"]
    with pytest.raises(StaleAttempt, match=f"token {attempt.token} is no longer current"):
        with engine.begin() as conn:
            replace_qc1_rows(conn, table, KEYS.set_id, [qc1_row(d) for d in (1, 2, 3, 4)])
            assert record_alert(conn, failing_result(), MEMBERS.version) is not None
            set_lifecycle.finish(conn, attempt, "job-1", "failed", "FLAT")
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(table)).scalar() == 0
        assert conn.execute(select(func.count()).select_from(alerts)).scalar() == 0
    assert (now(engine).state, now(engine).token) == (SetState.QUEUED, queued_again.token)
    assert events(engine) == ["queued", "started", "queued"]
    second = started(engine)  # the reprocessing job: its result stands
    with engine.begin() as conn:
        set_lifecycle.finish(conn, second, "job-2", "passed", "FLAT")
    assert now(engine).state == SetState.DONE and events(engine)[-1] == "finished"


ATTEMPT_TRANSITIONS: dict[str, Callable[..., object]] = {
    "finish": lambda conn, row: set_lifecycle.finish(conn, row, "job-1", "passed", "FLAT"),
    "reject": lambda conn, row: set_lifecycle.reject(conn, row, "job-1", "not a FITS file"),
    "retry_later": lambda conn, row: set_lifecycle.retry_later(conn, row, "job-1", "database locked", True),
    "fail": lambda conn, row: set_lifecycle.fail(conn, row, "job-1", "out of memory", False),
    "requeue": lambda conn, row: set_lifecycle.requeue(conn, row, "job missing from Redis"),
}


@pytest.mark.parametrize("transition", sorted(ATTEMPT_TRANSITIONS))
def test_a_late_writer_is_refused(engine: Engine, transition: str) -> None:
    """The attempt stalled; the repair pass queued the set again and another attempt took it: whatever the first one
    asks for is refused, and the second one's state stands."""
    late = started(engine)
    requeued(engine, "worker stopped sending heartbeats (killed?)")
    current = started(engine)
    with pytest.raises(StaleAttempt), engine.begin() as conn:
        ATTEMPT_TRANSITIONS[transition](conn, late)
    assert (now(engine).state, now(engine).token) == (SetState.RUNNING, current.token)
    assert events(engine) == ["queued", "started", "queued", "started"]


@pytest.mark.parametrize(("transition", "allowed"), [("finish", False), ("reject", False), ("retry_later", False),
                                                     ("fail", False), ("requeue", True)])
def test_attempt_transitions_start_from_running(engine: Engine, transition: str, allowed: bool) -> None:
    """Of a finished set, only Reprocess (requeue) is taken; the attempt's own transitions are refused."""
    attempt = started(engine)
    with engine.begin() as conn:
        set_lifecycle.finish(conn, attempt, "job-1", "passed", "FLAT")
    if allowed:
        with engine.begin() as conn:
            ATTEMPT_TRANSITIONS[transition](conn, now(engine))
        assert now(engine).state == SetState.QUEUED
        return
    with pytest.raises(TransitionRefused, match="is done; not moved to") as refused, engine.begin() as conn:
        ATTEMPT_TRANSITIONS[transition](conn, now(engine))
    assert not isinstance(refused.value, StaleAttempt) and now(engine).state == SetState.DONE


def test_requeue_refuses_what_cannot_be_queued_and_what_moved_since_it_was_read(engine: Engine) -> None:
    seen = now(engine)  # the repair pass read it queued, job missing
    started(engine)  # meanwhile a worker took it
    with pytest.raises(StaleAttempt), engine.begin() as conn:
        set_lifecycle.requeue(conn, seen, "job missing from Redis")
    with engine.begin() as conn:
        set_lifecycle.claim_complete(conn, KEYS, NEWER, [], None)  # newer bytes of a member
        set_lifecycle.note_partial(conn, SetKeys("s2", KEYS.night), "missing BPM", [])  # a set not complete yet
        pending = conn.execute(select(sets).where(sets.c.version.startswith("pending-"))).one()
    with pytest.raises(TransitionRefused, match="is waiting; not moved to queued"), engine.begin() as conn:
        set_lifecycle.requeue(conn, pending, "reprocess requested in the dashboard")
    running = now(engine)
    with engine.begin() as conn:
        assert set_lifecycle.supersede_if_overtaken(conn, running, "job-1")
    with pytest.raises(TransitionRefused, match="is superseded; not moved to queued"), engine.begin() as conn:
        set_lifecycle.requeue(conn, now(engine), "reprocess requested in the dashboard")


def test_pictures_are_marked_for_the_attempt_that_holds_the_set(engine: Engine) -> None:
    first = started(engine)
    with engine.begin() as conn:
        set_lifecycle.finish(conn, first, "job-1", "passed", "FLAT")
    drawn_for = now(engine)  # what a picture job read
    requeued(engine)
    with pytest.raises(StaleAttempt, match="the set is queued.*not moved to pictures done"), engine.begin() as conn:
        set_lifecycle.pictures_drawn(conn, drawn_for)  # queued again meanwhile
    second = started(engine)
    with engine.begin() as conn:
        set_lifecycle.finish(conn, second, "job-2", "passed", "FLAT")
    with pytest.raises(StaleAttempt), engine.begin() as conn:
        set_lifecycle.pictures_drawn(conn, drawn_for)  # done again, by another attempt: not these pictures
    with pytest.raises(StaleAttempt), engine.begin() as conn:
        set_lifecycle.pictures_failed(conn, drawn_for, "OSError: [Errno 28] No space left on device")
    assert now(engine).pictures == "pending"
    with engine.begin() as conn:
        set_lifecycle.pictures_drawn(conn, now(engine))
    assert now(engine).pictures == "done"
