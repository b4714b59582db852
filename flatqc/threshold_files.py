"""The threshold files of ``FLATQC_THRESHOLDS_DIR`` (contract 9): read and checked, which one is in force for a
night, and the folder's state as ``flatqc status``, ``flatqc thresholds`` and ``flatqc up`` report it.

No numpy and no SQL here, so ``flatqc status`` can look at the folder cheaply; scoring is :mod:`flatqc.scoring`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

from qc.config import QCConfig
from qc.profiles import PROFILES, InstrumentProfile
from qc.records import QC1_NAMES
from qc.thresholds import (
    ThresholdFile,
    ThresholdFileError,
    built_in_thresholds,
    file_in_force,
    parse_threshold_file,
    sorted_files,
)

NO_FOLDER = "none: built-in"
"""How commands name the threshold folder when ``FLATQC_THRESHOLDS_DIR`` is unset."""


def scored_parameters(profile: InstrumentProfile) -> tuple[str, ...]:
    """The parameters of ``profile``'s QC1 rows a threshold may score (each has a ``score_<parameter>`` column)."""
    return (*QC1_NAMES, *profile.bpm_bit_columns)


ALL_PARAMETERS = tuple(dict.fromkeys(p for profile in PROFILES.values() for p in scored_parameters(profile)))


@dataclass(frozen=True)
class Thresholds:
    """The threshold files of the folder (oldest first) and the built-in defaults; which is in force for a night."""

    files: tuple[ThresholdFile, ...]
    built_in: ThresholdFile
    folder: Path | None = None

    def for_night(self, night: str | date) -> ThresholdFile:
        """The file in force for the night ``YYYY-MM-DD``: the newest whose ``valid_from`` <= it, else built-in."""
        day = night if isinstance(night, date) else date.fromisoformat(night)
        return file_in_force(self.files, day, self.built_in)


def load_thresholds(folder: Path | None, configs: Mapping[str, QCConfig]) -> Thresholds:
    """Read and check every ``*.toml`` of ``folder`` (None: none, the built-in thresholds only); raises
    :class:`ThresholdFileError` for the first file that breaks the format or cannot be read as UTF-8 text, or for
    two files dated the same day. Re-read only when a file changed (name, size, mtime)."""
    built_in = built_in_thresholds(configs)
    if folder is None:
        return Thresholds((), built_in)
    if not folder.is_dir():
        raise ThresholdFileError(str(folder), None, None, "FLATQC_THRESHOLDS_DIR is not a folder")
    paths = sorted(folder.glob("*.toml"))
    try:
        signature = tuple((p.name, st.st_size, st.st_mtime_ns) for p in paths for st in (p.stat(),))
    except OSError as exc:  # a file that went away meanwhile, or a dangling link
        raise ThresholdFileError(exc.filename or str(folder), None, None, f"cannot be read ({exc.strerror})") from None
    return Thresholds(_read_files(folder, signature), built_in, folder)


@lru_cache(maxsize=8)
def _read_files(folder: Path, signature: tuple[tuple[str, int, int], ...]) -> tuple[ThresholdFile, ...]:
    files = [parse_threshold_file(name, _text(folder / name), ALL_PARAMETERS, PROFILES)
             for name, _size, _mtime in signature]
    seen: dict[date, str] = {}
    for item in sorted_files(files):
        if item.valid_from in seen:
            raise ThresholdFileError(item.name, None, "valid_from",
                                     f"{item.valid_from} is the valid_from of {seen[item.valid_from]} too: "
                                     "one file per date")
        seen[item.valid_from] = item.name
    return tuple(sorted_files(files))


def _text(path: Path) -> str:
    """A threshold file's text as its bytes hold it (line ends not translated), so that its content hash is that of
    the file, as ``sha256sum`` prints it; a file that cannot be read, or is not UTF-8, is a broken file."""
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            return fh.read()
    except OSError as exc:
        raise ThresholdFileError(path.name, None, None, f"cannot be read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise ThresholdFileError(path.name, None, None, f"not UTF-8 text (byte {exc.start})") from None


def thresholds_of(settings: Any) -> Thresholds:
    """The thresholds of the service's settings (``thresholds_dir`` and each profile's limits)."""
    return load_thresholds(settings.thresholds_dir, {name: settings.qc_config(name) for name in PROFILES})


def folder_name(folder: Path | None) -> str:
    """The threshold folder as commands show it: its path, or :data:`NO_FOLDER`."""
    return NO_FOLDER if folder is None else str(folder)


@dataclass(frozen=True)
class FolderState:
    """The threshold folder seen for one night: the file in force then, or why the folder cannot be used."""

    folder: Path | None
    night: date
    in_force: ThresholdFile | None
    """None when a file is broken (:attr:`error`)."""
    error: str | None = None
    """The broken file's error (file, line, key and problem): sets are stored without scores meanwhile."""

    def as_dict(self) -> dict[str, Any]:
        """Plain values (for ``--json``)."""
        chosen = self.in_force
        return {"folder": folder_name(self.folder), "night": self.night.isoformat(),
                "in_force": chosen and {"name": chosen.name, "valid_from": chosen.valid_from.isoformat(),
                                        "sha256": chosen.sha256},
                "error": self.error}


def folder_state(settings: Any, night: date) -> FolderState:
    """The state of the settings' threshold folder for ``night``."""
    try:
        return FolderState(settings.thresholds_dir, night, thresholds_of(settings).for_night(night))
    except ThresholdFileError as exc:
        return FolderState(settings.thresholds_dir, night, None, str(exc))
