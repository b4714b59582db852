"""Set grouping (contract 2): master + BPM + the raws both list, matched by provenance, not by name."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from qc.errors import InconsistentSet
from qc.fitsio import FrameInfo
from qc.times import mjd_to_datetime

NIGHT_DIR = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def set_id_for(raw_names: Iterable[str]) -> str:
    """Stable id of a set: the first 16 hex digits of sha256 over the sorted raw names (contract 2)."""
    joined = "\n".join(sorted(raw_names))
    return hashlib.sha256(joined.encode()).hexdigest()[:16]


def night_of(path: Path, mjd_obs: float | None) -> str | None:
    """The night ``YYYY-MM-DD``: the ``<DATE>`` folder the product sits in, else the date of MJD-OBS - 12 h."""
    for part in reversed(path.parts[:-1]):
        if NIGHT_DIR.match(part):
            return part
    if mjd_obs is None:
        return None
    return mjd_to_datetime(mjd_obs - 0.5).date().isoformat()


@dataclass(frozen=True)
class FlatSet:
    """A complete set: one master, its BPM and the N raws both list (sorted by ARCFILE)."""

    set_id: str
    night: str
    profile: str
    master: FrameInfo
    bpm: FrameInfo
    raws: tuple[FrameInfo, ...]

    @property
    def setting_key(self) -> str:
        return self.raws[0].setting_key or ""

    @property
    def n_raw(self) -> int:
        return len(self.raws)


@dataclass(frozen=True)
class PartialSet:
    """Products or raws seen for a set that is not complete yet, with what is missing."""

    set_id: str
    night: str | None
    present: tuple[FrameInfo, ...]
    missing: tuple[str, ...]
    """Human-readable names of what is missing: ``master``, ``BPM``, ``raw CRIRE.2010-...fits``."""


@dataclass
class Grouping:
    """Result of grouping a bag of classified files."""

    complete: list[FlatSet] = field(default_factory=list)
    partial: list[PartialSet] = field(default_factory=list)
    rejected: list[tuple[str, str, tuple[FrameInfo, ...]]] = field(default_factory=list)
    """``(set_id, reason, members)`` for sets whose members disagree."""
    superseded: list[tuple[FrameInfo, str]] = field(default_factory=list)
    """Products replaced by a newer product of the same kind for the same set, with a reason."""
    unused_raws: list[FrameInfo] = field(default_factory=list)
    """Raws no product lists."""


def check_consistency(raws: Iterable[FrameInfo]) -> None:
    """Raise :class:`InconsistentSet` naming the first keyword on which the raws of a set disagree."""
    raws = list(raws)
    first = raws[0]
    checks = [
        ("DIT", lambda f: f.dit),
        ("NDIT", lambda f: f.ndit),
        ("DET WINDOW NY", lambda f: f.window_ny),
        ("DET WINDOW STARTY", lambda f: f.window_starty),
    ]
    for name, get in checks:
        values = sorted({get(f) for f in raws}, key=str)
        if len(values) > 1:
            raise InconsistentSet(f"raws disagree on {name}: {', '.join(map(str, values))}")
    for index, (key, _) in enumerate(first.setting_values):
        values = sorted({f.setting_values[index][1] for f in raws})
        if len(values) > 1:
            raise InconsistentSet(f"raws disagree on {key}: {', '.join(values)}")


def _newest(frames: list[FrameInfo], mtimes: dict[Path, float]) -> tuple[FrameInfo, list[FrameInfo]]:
    ordered = sorted(frames, key=lambda f: (mtimes.get(f.path, 0.0), str(f.path)))
    return ordered[-1], ordered[:-1]


def group_sets(frames: Iterable[FrameInfo], mtimes: dict[Path, float] | None = None) -> Grouping:
    """Group classified files into sets.

    Raws are matched by ``ARCFILE`` (the first one given wins when the same raw appears twice, so callers
    list preferred locations first). When several masters (or BPMs) list the same raws, the newest by
    ``mtimes`` is used and the others are reported as superseded.
    """
    mtimes = mtimes or {}
    raws: dict[str, FrameInfo] = {}
    products: dict[str, dict[str, list[FrameInfo]]] = {}
    for frame in frames:
        if frame.kind == "raw":
            raws.setdefault(frame.arcfile or "", frame)
        else:
            sid = set_id_for(frame.raw_names)
            products.setdefault(sid, {"master": [], "bpm": []})[frame.kind].append(frame)

    result = Grouping()
    used: set[str] = set()
    for sid, kinds in sorted(products.items()):
        chosen: dict[str, FrameInfo] = {}
        for kind, found in kinds.items():
            if found:
                chosen[kind], older = _newest(found, mtimes)
                result.superseded += [(f, f"superseded by newer {kind} {chosen[kind].path.name}") for f in older]
        names = next(iter(chosen.values())).raw_names
        members = [raws[n] for n in names if n in raws]
        used.update(n for n in names if n in raws)
        missing = [k if k == "master" else "BPM" for k in ("master", "bpm") if k not in chosen]
        missing += [f"raw {n}" for n in names if n not in raws]
        product = next(iter(chosen.values()))
        night = night_of(product.path, members[0].mjd_obs if members else product.mjd_obs)
        present = (*chosen.values(), *members)
        if missing:
            result.partial.append(PartialSet(sid, night, present, tuple(missing)))
            continue
        try:
            check_consistency(members)
        except InconsistentSet as exc:
            result.rejected.append((sid, str(exc), present))
            continue
        result.complete.append(FlatSet(
            set_id=sid, night=night or "unknown", profile=product.profile,
            master=chosen["master"], bpm=chosen["bpm"],
            raws=tuple(sorted(members, key=lambda f: f.arcfile or "")),
        ))
    result.unused_raws = [f for name, f in sorted(raws.items()) if name not in used]
    return result
