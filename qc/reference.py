"""Reference frames (contract 6): ``<prefix>_FLAT_<key>.fits`` and ``<prefix>_BPM_<key>.fits`` in QC_REFERENCE."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from qc.config import QCConfig
from qc.profiles import InstrumentProfile


@dataclass(frozen=True)
class Reference:
    """The reference of a setting key; ``master``/``bpm`` are None without one, ``note`` says why."""

    master: Path | None
    bpm: Path | None
    note: str

    @property
    def available(self) -> bool:
        return self.master is not None and self.bpm is not None


def find_reference(reference_dir: Path | None, profile: InstrumentProfile, config: QCConfig,
                   setting_key: str) -> Reference:
    """Look up the reference master and BPM of ``setting_key``; both must exist to be used."""
    if reference_dir is None:
        return Reference(None, None, f"no reference for {setting_key} (no reference folder)")
    master = reference_dir / f"{profile.reference_prefix}_FLAT_{setting_key}.fits"
    bpm = reference_dir / f"{profile.reference_prefix}_BPM_{setting_key}.fits"
    if master.is_file() and bpm.is_file():
        return Reference(master, bpm, f"reference {master.name}")
    if setting_key in config.reference_keys:
        missing = ", ".join(p.name for p in (master, bpm) if not p.is_file())
        return Reference(None, None, f"no reference for {setting_key}: expected file missing ({missing})")
    return Reference(None, None, f"no reference for {setting_key}")


@dataclass(frozen=True)
class ReferenceFiles:
    """The reference files of one setting key found in the reference folder; a name is None when that file is
    missing (a reference is used only with both)."""

    setting_key: str
    master: str | None
    bpm: str | None


def references_found(reference_dir: Path, profile: InstrumentProfile) -> list[ReferenceFiles]:
    """Every setting key with a reference master or BPM of ``profile`` in ``reference_dir``, sorted by key."""
    found: dict[str, dict[str, str]] = {}
    for kind in ("FLAT", "BPM"):
        prefix = f"{profile.reference_prefix}_{kind}_"
        for path in reference_dir.glob(f"{prefix}*.fits"):
            if path.is_file():
                found.setdefault(path.name.removeprefix(prefix).removesuffix(".fits"), {})[kind] = path.name
    return [ReferenceFiles(key, names.get("FLAT"), names.get("BPM")) for key, names in sorted(found.items())]
