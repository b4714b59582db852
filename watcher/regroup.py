"""Regrouping a night: group its current files into sets; claim complete ones for the queue, note partial ones,
reject inconsistent ones (all state changes through :mod:`flatqc.lifecycle`, in one transaction)."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from flatqc import ledger
from flatqc.faults import checkpoint
from flatqc.files import path_from_text, path_text
from flatqc.lifecycle import files as file_lifecycle
from flatqc.lifecycle import sets as set_lifecycle
from flatqc.lifecycle.sets import Members, SetKeys
from flatqc.queue import Lane
from qc.sets import group_sets
from watcher.intake import FrameCache


def regroup(engine: Engine, night: str, frames: FrameCache, lane: Lane = Lane.REALTIME) -> list[tuple[str, str]]:
    """Group ``night``'s current files; returns ``(set version, job id)`` of the sets claimed for the QC queue of
    ``lane``."""
    with engine.connect() as conn:
        rows = ledger.current_files(conn, night)
    found, ids, hashes, mtimes = [], {}, {}, {}
    for row in rows:
        frame = frames.get(row.path, row.sha256, path_from_text(row.path))
        if frame is None:
            continue
        found.append(frame)
        ids[frame.path], hashes[frame.path], mtimes[frame.path] = row.id, row.sha256, row.mtime
    grouping = group_sets(found, mtimes)

    def members_of(paths: list) -> Members:
        return Members(tuple(path_text(p) for p in paths), tuple(hashes[p] for p in paths))

    claimed: list[tuple[str, str]] = []
    with engine.begin() as conn:
        for flatset in grouping.complete:
            paths = [flatset.master.path, flatset.bpm.path, *(r.path for r in flatset.raws)]
            member_ids = [ids[p] for p in paths]
            keys = SetKeys(flatset.set_id, flatset.night, flatset.profile, flatset.setting_key, flatset.n_raw)
            members = members_of(paths)
            job_id = set_lifecycle.claim_complete(conn, keys, members, member_ids,
                                                  ledger.first_seen(conn, member_ids), lane)
            if job_id is not None:
                claimed.append((members.version, job_id))
        for partial in grouping.partial:
            missing = "missing " + ", ".join(partial.missing)
            set_lifecycle.note_partial(conn, SetKeys(partial.set_id, partial.night), missing,
                                       [ids[f.path] for f in partial.present])
        for set_id, reason, frames_of_set in grouping.rejected:
            paths = [f.path for f in frames_of_set]
            set_lifecycle.reject_grouping(conn, SetKeys(set_id, night), members_of(paths), [ids[p] for p in paths],
                                          reason)
        for frame, reason in grouping.superseded:
            file_lifecycle.ignore(conn, [ids[frame.path]], reason)
        file_lifecycle.hold(conn, [ids[f.path] for f in grouping.unused_raws],
                            "raw flat not listed by any master or BPM (yet)")
        checkpoint("regroup-before-commit")
    checkpoint("regroup-after-commit")
    return claimed
