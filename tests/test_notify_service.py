"""Alerts delivered beside the jobs by a real ``flatqc worker`` process (real Redis, real HTTP channels on loopback):
a slow channel never delays the next set's verdict, each channel is retried alone, every outcome is stored."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from flatqc.db import deliveries, job_events, sets
from flatqc.settings import settings_env
from qc.synth import load_manifest
from tests.service_helpers import BadChannel, Webhook, chosen, deliver_set, wait_for, watcher_rig

pytestmark = [pytest.mark.service, pytest.mark.slow]

DEADLINE_S = 5.0


def test_a_set_after_failing_sets_is_not_held_by_their_alerts(
        synth_night: Path, tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    failing = [s for s in load_manifest(synth_night / "manifest.json").sets if s.expected_verdict == "failed"][:2]
    passing = chosen(synth_night)
    with (Webhook().running() as hook, BadChannel("silent").running() as silent,
          BadChannel("error").running() as error, BadChannel("trickle").running() as trickle,
          watcher_rig(synth_night, tmp_path, redis_url, monkeypatch, alert_retries=2, alert_deadline_s=DEADLINE_S,
                      alert_urls=[hook.url, silent.url, error.url, trickle.url]) as rig):
        settings, engine = rig["settings"], rig["engine"]
        for entry in (*failing, passing):  # queued in this order: the passing set after the failing ones
            deliver_set(synth_night, rig["tree"], entry)
            rig["watcher"].rescan()
            rig["clock"].now += 100
            rig["watcher"].tick()
        env = os.environ | settings_env(settings) | {"FLATQC_REDIS_URL": redis_url}
        worker = subprocess.Popen([sys.executable, "-m", "flatqc", "worker"], env=env)
        try:
            def settled() -> bool:
                with engine.connect() as conn:
                    states = set(conn.execute(select(sets.c.state)).scalars())
                    rows = conn.execute(select(deliveries)).all()
                return states == {"done"} and len(rows) >= 8 and all(r.due_at is None for r in rows)

            wait_for(settled, 120, "every set done and every delivery sent or given up")
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(60)
        with engine.connect() as conn:
            finished = dict(conn.execute(select(sets.c.set_id, job_events.c.at)
                                         .join(job_events, job_events.c.version == sets.c.version)
                                         .where(job_events.c.event == "finished")).all())
            rows = conn.execute(select(deliveries)).all()
    # The passing set's verdict came right after the failing sets' jobs, not after their alerts' deadlines.
    first_failing = min(finished[s.set_id] for s in failing)
    assert (finished[passing.set_id] - first_failing).total_seconds() < DEADLINE_S
    notices = [b for b in hook.bodies if not b.get("attachments")]
    assert sorted(next(s.set_id for s in failing if s.set_id in b["title"]) for b in notices) == sorted(
        s.set_id for s in failing)  # the healthy channel: each alert exactly once
    by_channel: dict[str, list] = {}
    for row in rows:
        by_channel.setdefault(row.channel, []).append(row)
    assert all(r.attempts == 1 and r.sent_at is not None for r in by_channel[hook.url])
    for bad in (silent, error, trickle):  # retried alone, up to the cap, each outcome stored
        assert all(r.attempts == 2 and r.sent_at is None and r.last_error for r in by_channel[bad.url]), bad.mode
    assert error.requests == 2 * len(by_channel[error.url])
    assert all("no complete answer within 5 s" in r.last_error or "still hanging" in r.last_error
               for r in by_channel[trickle.url])
