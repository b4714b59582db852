"""The service tests' wait on database writes: it wakes on a write made by someone else, and only then."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select, update

from flatqc.db import connect, sets
from tests.service_helpers import wait_for_write


def test_a_wait_on_writes_wakes_on_a_write_from_elsewhere_and_times_out_without_one(db_url: str) -> None:
    engine = connect(db_url)
    with engine.begin() as conn:
        conn.execute(sets.insert().values(set_id="s", version="v", state="queued"))

    checks = []

    def state() -> str:
        checks.append(time.monotonic())
        with engine.connect() as conn:
            return conn.execute(select(sets.c.state)).scalar_one()

    writer = connect(db_url)  # another engine, as a worker has

    def start_the_job() -> None:
        with writer.begin() as conn:
            conn.execute(update(sets).values(state="running"))

    timer = threading.Timer(0.5, start_the_job)
    started = time.monotonic()
    timer.start()
    try:
        wait_for_write(db_url, lambda: state() == "running", 30, "the write")
    finally:
        timer.join()
    assert 0.5 <= time.monotonic() - started < 10
    assert len(checks) <= 5, f"{len(checks)} checks: it spins (its own reads wake it?)"
    checks.clear()
    started = time.monotonic()
    with pytest.raises(AssertionError, match="timed out after 1 s waiting for a write that never comes"):
        wait_for_write(db_url, lambda: state() == "done", 1.0, "a write that never comes")
    assert time.monotonic() - started >= 1.0 and len(checks) <= 3
    writer.dispose()
    engine.dispose()
