"""The watcher and the job on the ledger, step by step (no threads): symlinks, duplicates, new bytes, races."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from astropy.io import fits
from sqlalchemy import select

from flatqc.db import crires_flat, files, job_events, sets
from flatqc.files import sha256_file
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
