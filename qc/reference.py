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
