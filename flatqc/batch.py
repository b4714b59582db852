"""``flatqc process``: find the sets under some paths and process them at once, without any queue."""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import Engine

from flatqc.db import ALERT, WARNING
from flatqc.faults import describe
from flatqc.files import is_candidate_name, locate_raw, path_text, sha256_file, unusable_reason, walk_files
from flatqc.last_good import find_last_good
from flatqc.lifecycle import alerts as alert_lifecycle
from flatqc.lifecycle import sets as set_lifecycle
from flatqc.lifecycle.sets import Members, SetKeys, SetState
from flatqc.set_qc import SetOutcome, compute_set, store_qc1
from flatqc.settings import Settings
from qc.errors import FlatQCError, NotAFlatProduct
from qc.fitsio import FrameInfo, inspect_file
from qc.last_good import LastGoodSet
from qc.sets import FlatSet, Grouping, group_sets, night_of


@dataclass
class FileNote:
    """A file that was not used, and why (state ``ignored`` or ``rejected``)."""

    path: Path
    state: str
    reason: str


@dataclass(frozen=True)
class RaisedAlert:
    """An alert or warning that ``flatqc process --alerts`` opened or updated (to be notified)."""

    id: int
    set_id: str
    severity: str


@dataclass
class ProcessReport:
    """What one ``flatqc process`` run did, and where its results went."""

    database: str = ""
    pictures: Path = Path()
    """``<DATE>/<set_id>/`` PNGs below this folder."""
    reference: Path = Path()
    skipped: list[Path] = field(default_factory=list)
    """Folders under the given paths that were not read: QC output and references."""
    alerts: list[RaisedAlert] = field(default_factory=list)
    done: list[tuple[FlatSet, SetOutcome]] = field(default_factory=list)
    failed_sets: list[tuple[str, str]] = field(default_factory=list)
    """``(set_id, reason)`` of complete sets that could not be processed or were inconsistent."""
    incomplete: list[tuple[str, str]] = field(default_factory=list)
    """``(set_id, what is missing)``."""
    files: list[FileNote] = field(default_factory=list)


def reference_folder(paths: Sequence[Path], settings: Settings) -> Path:
    """The configured reference folder if it exists, else a ``reference/`` folder in a given path or up to three
    levels above it (``flatqc synth`` and the demo put it beside ``dfs_product/``)."""
    if settings.qc_reference.is_dir():
        return settings.qc_reference
    for root in paths:
        base = root if root.is_dir() else root.parent
        for folder in (base, *base.resolve().parents[:3]):
            if (folder / "reference").is_dir():
                return folder / "reference"
    return settings.qc_reference


def skipped_folders(paths: Sequence[Path], settings: Settings) -> list[Path]:
    """Folders under ``paths`` that hold results or references, not products: the QC output and reference folders
    (configured or found), and ``qc/`` and ``reference/`` of a tree laid out like the service's (``dfs_product/``
    beside them)."""
    candidates = [settings.qc_output, settings.qc_reference]
    for root in paths:
        if (root / "dfs_product").is_dir():
            candidates += [root / "qc", root / "reference"]
    inside = [Path(os.path.abspath(c)) for c in candidates if c.is_dir()]
    roots = [Path(os.path.abspath(r)) for r in paths]
    return sorted({c for c in inside if any(c.is_relative_to(r) for r in roots)})


def inspect_tree(paths: Iterable[Path], settings: Settings, notes: list[FileNote],
                 skip: Sequence[Path] = ()) -> list[FrameInfo]:
    """Classify every file under ``paths`` but those under ``skip``; unusable ones go to ``notes`` with their
    reason."""
    frames: list[FrameInfo] = []
    for root in paths:
        if not root.exists():
            notes.append(FileNote(root, "rejected", "path does not exist"))
            continue
        top = root if root.is_dir() else root.parent
        for path in walk_files(root):
            if any(Path(os.path.abspath(path)).is_relative_to(folder) for folder in skip):
                continue
            frame = _inspect_one(path, top, settings, notes)
            if frame is not None:
                frames.append(frame)
    return frames


def _inspect_one(path: Path, top: Path, settings: Settings, notes: list[FileNote]) -> FrameInfo | None:
    if not is_candidate_name(path.name):
        notes.append(FileNote(path, "ignored", "hidden or temporary file name"))
        return None
    unusable = unusable_reason(path, top)
    if unusable is not None:
        notes.append(FileNote(path, "ignored", unusable))
        return None
    try:
        frame = inspect_file(path, settings.window_starty_defaults())
    except OSError as exc:
        notes.append(FileNote(path, "rejected", f"cannot be read: {exc.strerror or exc}"))
        return None
    except NotAFlatProduct as exc:
        notes.append(FileNote(path, "ignored", str(exc)))
        return None
    except FlatQCError as exc:
        notes.append(FileNote(path, "rejected", str(exc)))
        return None
    if settings.instrument not in ("auto", frame.profile):
        notes.append(FileNote(path, "ignored", f"instrument {frame.profile} not handled (FLATQC_INSTRUMENT)"))
        return None
    return frame


def _add_missing_raws(grouping: Grouping, frames: list[FrameInfo], settings: Settings,
                      notes: list[FileNote]) -> bool:
    """Look up the raws partial sets miss in ``$DFS_RAW`` (contract 1); True if any was found."""
    known = {f.path.resolve() for f in frames}
    found = False
    for partial in grouping.partial:
        product = next((f for f in partial.present if f.kind != "raw"), None)
        if product is None:
            continue
        for missing in partial.missing:
            if not missing.startswith("raw "):
                continue
            path = locate_raw(missing.removeprefix("raw "), product.path, partial.night, settings.dfs_raw)
            if path is not None and path.resolve() not in known:
                frame = _inspect_one(path, path.parent, settings, notes)
                if frame is not None:
                    frames.append(frame)
                    known.add(path.resolve())
                    found = True
    return found


def _members(paths: list[Path], hashes: dict[Path, str] | None = None) -> Members:
    hashes = hashes or {}
    return Members(tuple(path_text(p) for p in paths), tuple(hashes.get(p) or sha256_file(p) for p in paths))


def _record_set(engine: Engine, flatset: FlatSet, hashes: dict[Path, str], state: SetState, reason: str | None,
                outcome: SetOutcome | None, settings: Settings, with_alerts: bool = False) -> list[RaisedAlert]:
    """Write the set's row (and its QC1 rows when done; with ``with_alerts`` its alert and trend-limit warning, as
    the service would) in one transaction; replaces earlier rows. Returns the alerts to notify."""
    members = _members([flatset.master.path, flatset.bpm.path, *(r.path for r in flatset.raws)], hashes)
    keys = SetKeys(flatset.set_id, flatset.night, flatset.profile, flatset.setting_key, flatset.n_raw)
    with engine.begin() as conn:
        if outcome is not None:
            store_qc1(conn, flatset, outcome, settings, members.version)
        set_lifecycle.record_processed(conn, keys, members, state, reason,
                                       outcome.result.certification.verdict if outcome else None,
                                       outcome.result.raw_type if outcome else None)
        if outcome is None or not with_alerts:
            return []
        result = outcome.result
        raised = [(alert_lifecycle.record_alert(conn, result, members.version), ALERT),
                  (alert_lifecycle.record_warning(conn, result, members.version), WARNING)]
    return [RaisedAlert(alert_id, flatset.set_id, severity) for alert_id, severity in raised if alert_id is not None]


def observed_first(flatset: FlatSet) -> tuple[bool, float, str]:
    """Sort key: sets by ``MJD-OBS`` of their first raw (unknown last), then by set id."""
    mjd = flatset.raws[0].mjd_obs
    return mjd is None, mjd or 0.0, flatset.set_id


def process_paths(paths: Iterable[Path], settings: Settings, engine: Engine,
                  on_set: Callable[[str], None] | None = None, with_alerts: bool = False,
                  jobs: int = 1) -> ProcessReport:
    """Process every complete set found under ``paths`` (references from :func:`reference_folder`, QC output and
    reference folders skipped); report sets, incomplete sets, unusable files and where the results went. With
    ``with_alerts`` failing sets open alerts and sets outside their trend limits warnings (not sent here). ``jobs``
    processes compute the sets (:func:`computed_sets`); this one writes their rows, one transaction per set, in the
    sets' order, so the database and the report are those of a serial run."""
    paths = list(paths)
    settings = settings.model_copy(update={"qc_reference": reference_folder(paths, settings)})
    report = ProcessReport(database=engine.url.render_as_string(), pictures=settings.qc_output,
                           reference=settings.qc_reference, skipped=skipped_folders(paths, settings))
    frames = inspect_tree(paths, settings, report.files, report.skipped)
    grouping = group_sets(frames, {f.path: f.path.stat().st_mtime for f in frames})
    if _add_missing_raws(grouping, frames, settings, report.files):
        grouping = group_sets(frames, {f.path: f.path.stat().st_mtime for f in frames})
    for frame, reason in grouping.superseded:
        report.files.append(FileNote(frame.path, "ignored", reason))
    for frame in grouping.unused_raws:
        report.files.append(FileNote(frame.path, "ignored", "raw flat not listed by any master or BPM here"))
    for partial in grouping.partial:
        report.incomplete.append((partial.set_id, "missing " + ", ".join(partial.missing)))
    for set_id, reason, members in grouping.rejected:
        report.failed_sets.append((set_id, reason))
        for member in members:
            report.files.append(FileNote(member.path, "rejected", f"set {set_id}: {reason}"))
        keys = SetKeys(set_id, night_of(members[0].path, members[0].mjd_obs), members[0].profile)
        with engine.begin() as conn:
            set_lifecycle.record_processed(conn, keys, _members([m.path for m in members]), SetState.REJECTED,
                                           reason, None, None)
    complete = sorted(grouping.complete, key=observed_first)  # a set's last good set is stored before it
    for flatset, done in zip(complete, computed_sets(complete, settings, engine, jobs), strict=True):
        if on_set:
            on_set(flatset.set_id)
        if done.outcome is None:
            report.failed_sets.append((flatset.set_id, done.problem))
            if done.rejected:
                _record_set(engine, flatset, done.hashes, SetState.REJECTED, done.problem, None, settings)
            continue
        report.alerts += _record_set(engine, flatset, done.hashes, SetState.DONE, None, done.outcome, settings,
                                     with_alerts)
        report.done.append((flatset, done.outcome))
    return report


@dataclass
class Computed:
    """A set computed by :func:`compute_one`: its members' hashes, and its outcome or why there is none."""

    hashes: dict[Path, str]
    outcome: SetOutcome | None = None
    problem: str = ""
    rejected: bool = False
    """The problem is a fact about the set's bytes (recorded as rejected), not one of this moment (disk full)."""


def compute_one(flatset: FlatSet, settings: Settings, last_good: LastGoodSet | None) -> Computed:
    """Hash, analyse (against ``last_good``) and draw one set; touches no database (runs in a pool's process)."""
    hashes = {f.path: sha256_file(f.path) for f in (flatset.master, flatset.bpm, *flatset.raws)}
    try:
        return Computed(hashes, compute_set(flatset, settings, hashes, last_good))
    except FlatQCError as exc:
        return Computed(hashes, problem=str(exc), rejected=True)
    except Exception as exc:  # noqa: BLE001 - disk full, I/O error...: this set is not done, the others go on
        return Computed(hashes, problem=f"not processed: {describe(exc)}")


def computed_sets(flatsets: list[FlatSet], settings: Settings, engine: Engine, jobs: int) -> Iterator[Computed]:
    """:func:`compute_one` of each set, in their order (observed first). The caller stores each result before it
    asks for the next, and a set is computed only once the sets before it of its setting are stored, so that its
    last good set may be one of them (:func:`find_last_good`). Here for ``jobs`` 1 or a single set, else in a pool
    of ``jobs`` processes (forked: they start with what this one imported), the settings side by side."""
    if jobs <= 1 or len(flatsets) <= 1:
        for flatset in flatsets:
            yield compute_one(flatset, settings, find_last_good(engine, flatset))
        return
    waiting: dict[tuple[str, str], deque[int]] = {}
    for index, flatset in enumerate(flatsets):
        waiting.setdefault((flatset.profile, flatset.setting_key), deque()).append(index)
    with ProcessPoolExecutor(min(jobs, len(flatsets)), mp_context=multiprocessing.get_context("fork")) as pool:
        running: dict[int, Future[Computed]] = {}

        def start_next(setting: tuple[str, str]) -> None:
            if waiting[setting]:
                index = waiting[setting].popleft()
                flatset = flatsets[index]
                running[index] = pool.submit(compute_one, flatset, settings, find_last_good(engine, flatset))

        for setting in waiting:
            start_next(setting)
        for index, flatset in enumerate(flatsets):
            yield running.pop(index).result()
            start_next((flatset.profile, flatset.setting_key))  # the caller has stored this one


def cores() -> int:
    """The cores this process may run on: ``flatqc process``'s default number of jobs."""
    return len(os.sched_getaffinity(0))
