"""File-system helpers shared by ``flatqc process`` and the watcher: walking a tree safely and hashing."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

TEMPORARY_SUFFIXES = (".tmp", ".part", ".partial", ".swp", "~", ".filepart", ".crdownload")


def is_candidate_name(name: str) -> bool:
    """False for hidden and temporary names (``.x``, ``x.tmp``, ``x.part`` ...), which are never taken."""
    return not name.startswith(".") and not name.endswith(TEMPORARY_SUFFIXES)


def inside(path: Path, root: Path) -> bool:
    """True if ``path`` resolves (symlinks followed) to a location inside ``root``."""
    try:
        path.resolve().relative_to(root.resolve())
    except (ValueError, OSError):
        return False
    return True


def walk_files(root: Path) -> Iterator[Path]:
    """Every regular file under ``root`` (or ``root`` itself), sorted, without following symlinked directories.

    Symlinked files are yielded (callers decide, with :func:`inside`, whether they stay in the tree).
    Hidden and temporary names are yielded too: the caller records them as ignored.
    """
    if root.is_file() or root.is_symlink() and not root.is_dir():
        yield root
        return
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            yield Path(dirpath) / name


def sha256_file(path: Path) -> str:
    """Hex sha256 of the file's bytes (streamed)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def locate_raw(name: str, product_path: Path, night: str | None, dfs_raw: Path) -> Path | None:
    """Where the raw ``name`` (its ARCFILE) is: ``$DFS_RAW/<night>/``, then beside the product,
    then anywhere under ``$DFS_RAW`` (contract 1). Symlinks leading out of their tree are not followed."""
    candidates = [(dfs_raw / night / name, dfs_raw)] if night else []
    candidates.append((product_path.parent / name, product_path.parent))
    for path, root in candidates:
        if path.is_file() and inside(path, root):
            return path
    if dfs_raw.is_dir():
        for path in walk_files(dfs_raw):
            if path.name == name and inside(path, dfs_raw):
                return path
    return None
