"""The watcher and the job on the ledger, step by step (no threads): symlinks, duplicates, new bytes, races."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from astropy.io import fits
from click.testing import CliRunner
from sqlalchemy import select

from flatqc.cli import main
from flatqc.db import crires_flat, files, job_events, sets
from flatqc.files import sha256_file, shown
from flatqc.web.app import create_app
from qc.synth import SynthSet
from tests.service_helpers import chosen, deliver_set, watcher_rig
from worker import jobs

pytestmark = pytest.mark.service


@pytest.fixture()
def rig(synth_night: Path, tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict]:
    with watcher_rig(synth_night, tmp_path, redis_url, monkeypatch) as made:
        yield made


def settle(rig: dict) -> None:
    """One rescan, then long enough for every noticed file to settle, then one round of the watcher."""
    rig["watcher"].rescan()
    rig["watcher"].tick()
    rig["clock"].now += 100
    rig["watcher"].tick()


def versions(rig: dict, set_id: str) -> list[tuple[str, str]]:
    with rig["engine"].connect() as conn:
        return [(r.version, r.state) for r in conn.execute(
            select(sets).where(sets.c.set_id == set_id, ~sets.c.version.startswith("pending-")).order_by(sets.c.id))]


def queue_one_set(rig: dict) -> tuple[SynthSet, str, Path]:
    """Deliver the 4-flat set and let the watcher queue it: (its manifest entry, set version, master path)."""
    entry = chosen(rig["night"])
    placed = deliver_set(rig["night"], rig["tree"], entry)
    settle(rig)
    ((version, _),) = versions(rig, entry.set_id)
    return entry, version, placed[entry.master]


def test_symlink_out_of_the_tree_is_ignored_and_never_read(rig: dict, tmp_path: Path) -> None:
    entry = chosen(rig["night"])
    outside = tmp_path / "outside" / "secret.fits"
    outside.parent.mkdir()
    shutil.copy(rig["night"] / entry.master, outside)
    link = rig["tree"] / "dfs_product" / "DARK" / "2010-05-12" / "linked_master.fits"
    link.parent.mkdir(parents=True)
    link.symlink_to(outside)
    settle(rig)
    with rig["engine"].connect() as conn:
        (row,) = conn.execute(select(files).where(files.c.path == str(link))).all()
        assert conn.execute(select(sets)).first() is None
    assert row.state == "ignored" and row.reason == "symlink leads outside the watched tree"
    assert row.sha256 == "symlink"  # the target's bytes were never hashed


def test_same_bytes_twice_change_nothing_and_new_bytes_make_a_new_version(rig: dict) -> None:
    entry = chosen(rig["night"])
    placed = deliver_set(rig["night"], rig["tree"], entry)
    settle(rig)
    ((first, state),) = versions(rig, entry.set_id)
    assert state == "queued" and rig["queue"].count == 1

    master = placed[entry.master]
    os.utime(master, (master.stat().st_atime, master.stat().st_mtime + 60))  # same bytes, touched
    settle(rig)
    assert versions(rig, entry.set_id) == [(first, "queued")] and rig["queue"].count == 1

    original = master.read_bytes()
    staged = master.with_name(".incoming.fits")  # new bytes, renamed into place
    with fits.open(master) as hdul:
        hdul[0].header["HISTORY"] = "re-reduced"
        hdul.writeto(staged)
    staged.replace(master)
    settle(rig)
    (_, old_state), (second, new_state) = versions(rig, entry.set_id)
    assert (old_state, new_state) == ("superseded", "queued") and rig["queue"].count == 2

    assert jobs.run_set_qc(first)["state"] == "superseded"  # its job runs first and stores nothing
    assert jobs.run_set_qc(second)["state"] == "done"
    with rig["engine"].connect() as conn:
        rows = conn.execute(select(crires_flat.c.master_sha256)).scalars().all()
    assert rows == [sha256_file(master)] * 4

    master.write_bytes(original)  # the first bytes come back: the first version counts again
    settle(rig)
    assert versions(rig, entry.set_id) == [(first, "queued"), (second, "superseded")]
    assert jobs.run_set_qc(first)["state"] == "done"
    with rig["engine"].connect() as conn:
        rows = conn.execute(select(crires_flat.c.master_sha256)).scalars().all()
        ledger_rows = conn.execute(select(files.c.id).where(files.c.path == str(master))).all()
    assert rows == [sha256_file(master)] * 4 and len(ledger_rows) == 2
    rescans = rig["watcher"].rescan()
    assert rescans == 0  # the ledger agrees with the disk: nothing is hashed again


def test_a_job_overtaken_by_a_newer_version_stores_nothing(rig: dict) -> None:
    """The race: version 1 read its files, the master changed, version 2 finished first; version 1 must not
    overwrite version 2's rows when it finishes."""
    entry, first, master = queue_one_set(rig)
    old_bytes = master.read_bytes()
    with fits.open(master) as hdul:
        hdul[0].header["HISTORY"] = "re-reduced"
        hdul.writeto(master, overwrite=True)
    settle(rig)
    (_, _), (second, _) = versions(rig, entry.set_id)
    assert jobs.run_set_qc(second)["state"] == "done"
    new_sha = sha256_file(master)
    master.write_bytes(old_bytes)  # what version 1's job saw when it started
    with rig["engine"].begin() as conn:
        conn.execute(sets.update().where(sets.c.version == first).values(state="running"))
    assert jobs.run_set_qc(first)["state"] == "superseded"
    with rig["engine"].connect() as conn:
        rows = conn.execute(select(crires_flat.c.master_sha256)).scalars().all()
        events = conn.execute(select(job_events.c.event).where(job_events.c.version == first)).scalars().all()
    assert rows == [new_sha] * 4 and events[-1] == "superseded"


def test_a_member_being_rewritten_is_retried_not_rejected(rig: dict) -> None:
    """The same bytes re-delivered in place while the job reads them: the attempt fails and is retried (rq's
    back-off); the retry, with the bytes whole again, processes the set."""
    entry, first, master = queue_one_set(rig)
    whole = master.read_bytes()
    master.write_bytes(whole[: len(whole) // 3])  # the copy is under way
    with pytest.raises(jobs.MemberChanged, match="does not hold the queued bytes"):
        jobs.run_set_qc(first)
    master.write_bytes(whole)  # the copy has finished: the same bytes again
    assert jobs.run_set_qc(first)["state"] == "done"
    with rig["engine"].connect() as conn:
        events = conn.execute(select(job_events.c.event).where(job_events.c.version == first)
                              .order_by(job_events.c.id)).scalars().all()
    assert events == ["queued", "started", "error", "started", "finished"]


@pytest.mark.filterwarnings("ignore:File may have been truncated")  # the point of the test
def test_a_member_rewritten_while_read_is_retried_not_rejected(rig: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bytes were whole when hashed, then the copy started while the set was read: whatever error the
    half-written file causes, the attempt is retried, and the set is never rejected."""
    entry, first, master = queue_one_set(rig)
    whole = master.read_bytes()
    real_compute = jobs.compute_qc

    def copy_starts_while_reading(*args: object) -> object:
        master.write_bytes(whole[: len(whole) // 3])
        return real_compute(*args)

    monkeypatch.setattr(jobs, "compute_qc", copy_starts_while_reading)
    with pytest.raises(jobs.MemberChanged, match="rewritten while the set was read"):
        jobs.run_set_qc(first)
    monkeypatch.setattr(jobs, "compute_qc", real_compute)
    master.write_bytes(whole)
    assert jobs.run_set_qc(first)["state"] == "done"
    assert versions(rig, entry.set_id) == [(first, "done")]


def test_a_member_deleted_after_queueing_ends_its_set_incomplete_until_the_same_bytes_are_back(rig: dict) -> None:
    """The watcher records the deletion; the job ends the set as incomplete naming the file, once (no retry); the
    same bytes delivered again make the same version complete and queued again through the watcher's claim."""
    entry, first, _ = queue_one_set(rig)
    raw = rig["tree"] / entry.raws[0]
    saved = raw.with_name(".saved")
    raw.rename(saved)  # moved away: deleted as far as the watcher can tell
    settle(rig)
    with rig["engine"].connect() as conn:
        gone = conn.execute(select(files).where(files.c.path == str(raw))).one()
        assert conn.execute(select(sets).where(sets.c.version.startswith("pending-"))).first() is None
    assert gone.state == "vanished" and gone.gone_at is not None and "deleted or moved away" in gone.reason

    reason = f"member {raw.name} was deleted after the set was queued"
    assert jobs.run_set_qc(first) == {"set_id": entry.set_id, "state": "incomplete", "reason": reason}
    with rig["engine"].connect() as conn:
        (row,) = conn.execute(select(sets).where(sets.c.set_id == entry.set_id)).all()
        others = conn.execute(select(files.c.state).where(files.c.path != str(raw))).scalars().all()
    assert (row.state, row.reason, row.attempts) == ("incomplete", reason, 1) and set(others) == {"waiting"}
    settle(rig)
    assert versions(rig, entry.set_id) == [(first, "incomplete")] and rig["queue"].count == 1

    saved.rename(raw)  # the same bytes (and mtime) back
    settle(rig)
    assert versions(rig, entry.set_id) == [(first, "queued")] and rig["queue"].count == 2
    assert jobs.run_set_qc(first)["state"] == "done"
    with rig["engine"].connect() as conn:
        events = conn.execute(select(job_events.c.event).where(job_events.c.version == first)
                              .order_by(job_events.c.id)).scalars().all()
        assert conn.execute(select(files.c.state).where(files.c.path == str(raw))).scalar() == "done"
    assert events == ["queued", "started", "incomplete", "queued", "started", "finished"]


def test_a_done_set_stays_done_when_a_member_is_deleted_later(rig: dict) -> None:
    entry, first, master = queue_one_set(rig)
    assert jobs.run_set_qc(first)["state"] == "done"
    master.unlink()
    rig["watcher"].vanished(master)  # as the watchdog event says
    rig["watcher"].tick()
    with rig["engine"].connect() as conn:
        assert conn.execute(select(files.c.state).where(files.c.path == str(master))).scalar() == "vanished"
    settle(rig)
    assert versions(rig, entry.set_id) == [(first, "done")]
    with rig["engine"].connect() as conn:
        assert conn.execute(select(sets).where(sets.c.version.startswith("pending-"))).first() is None


def test_a_night_holding_only_a_waiting_raw_is_listed_by_status_and_answers_on_the_dashboard(rig: dict) -> None:
    """A raw in the next night's folder waits for a product that lists it: its night is listed and has a page."""
    entry = chosen(rig["night"])
    target = rig["tree"] / "dfs_raw" / "2010-05-13" / Path(entry.raws[0]).name
    target.parent.mkdir(parents=True)
    shutil.copy2(rig["night"] / entry.raws[0], target)
    settle(rig)
    summary = json.loads(CliRunner().invoke(main, ["status", "--json", "--files", "--night", "2010-05-13"]).output)
    (night,) = [n for n in summary["nights"] if n["night"] == "2010-05-13"]
    assert night["files_waiting"] == 1 and night["sets"] == {}
    assert [(shown(f["path"]), f["reason"]) for f in summary["waiting_files"]] == [
        (str(target), "raw flat not listed by any master or BPM (yet)")]
    assert summary["waiting_reasons"] == {"raw flat not listed by any master or BPM (yet)": 1}
    text = CliRunner().invoke(main, ["status", "--night", "2010-05-13"]).output
    assert "2010-05-13" in text and "     1 waiting  raw flat not listed by any master or BPM (yet)" in text
    client = create_app(rig["settings"], rig["engine"], rig["jobs"]).test_client()
    page = client.get("/nights/2010-05-13")
    assert page.status_code == 200 and target.name in page.get_data(as_text=True)
    assert client.get("/api/nights/2010-05-13").get_json()["waiting_files"][0]["state"] == "waiting"
    assert "/nights/2010-05-13" in client.get("/").get_data(as_text=True)
