"""File-system helpers shared by ``flatqc process`` and the watcher: walking a tree safely, hashing, and the
lossless text form of any path the file system allows."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

TEMPORARY_SUFFIXES = (".tmp", ".part", ".partial", ".swp", "~", ".filepart", ".crdownload")
RAW_BYTES_PREFIX = "fsb64:"
"""Prefix of the ledger's text form of a path that is not valid UTF-8 (the rest is its bytes in base64url)."""


def is_candidate_name(name: str) -> bool:
    """False for hidden and temporary names (``.x``, ``x.tmp``, ``x.part`` ...), which are never taken."""
    return not name.startswith(".") and not name.endswith(TEMPORARY_SUFFIXES)


def path_text(path: str | os.PathLike[str]) -> str:
    """The path as text that any database stores, losslessly: itself if it is valid UTF-8, else
    ``fsb64:<base64url of its bytes>`` (Linux allows any bytes but ``/`` and NUL in a name)."""
    text = os.fspath(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return RAW_BYTES_PREFIX + base64.urlsafe_b64encode(os.fsencode(text)).decode("ascii")
    return text


def path_from_text(text: str) -> Path:
    """Inverse of :func:`path_text`."""
    if text.startswith(RAW_BYTES_PREFIX):
        return Path(os.fsdecode(base64.urlsafe_b64decode(text.removeprefix(RAW_BYTES_PREFIX))))
    return Path(text)


def shown(value: str | os.PathLike[str]) -> str:
    """A path (or its ledger text) for people: undecodable bytes as ``\\xNN`` escapes."""
    text = os.fspath(value)
    if text.startswith(RAW_BYTES_PREFIX):
        text = os.fspath(path_from_text(text))
    return os.fsencode(text).decode("utf-8", "backslashreplace")


def safe_text(text: str) -> str:
    """Text that any database stores: lone surrogates (undecodable bytes of a file name) as ``\\xNN``."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return text


def inside(path: Path, root: Path) -> bool:
    """True if ``path`` resolves (symlinks followed) to a location inside ``root``; False for loops."""
    try:
        path.resolve().relative_to(root.resolve())
    except (ValueError, OSError, RuntimeError):  # RuntimeError: a symlink loop (Python < 3.13)
        return False
    return True


def unusable_reason(path: Path, root: Path) -> str | None:
    """Why ``path`` must never be read (symlink out of ``root`` or looping, dangling, not a regular file), or None.

    Decided from ``lstat`` and, for symlinks, where they lead; nothing is opened, so a FIFO cannot block.
    """
    try:
        own = path.lstat()
    except OSError as exc:
        return f"cannot stat: {exc.strerror}"
    if stat.S_ISLNK(own.st_mode):
        if not inside(path, root):
            try:
                path.stat()
            except FileNotFoundError:
                return "dangling symlink"
            except (OSError, RuntimeError):
                return "symlink loop"
            return "symlink leads outside the watched tree"
        try:
            target = path.stat()
        except FileNotFoundError:
            return "dangling symlink"
        except OSError as exc:
            return f"cannot stat symlink target: {exc.strerror}"
        return None if stat.S_ISREG(target.st_mode) else "symlink to something that is not a regular file"
    if stat.S_ISREG(own.st_mode):
        return None
    kind = ("directory" if stat.S_ISDIR(own.st_mode) else "FIFO" if stat.S_ISFIFO(own.st_mode)
            else "socket" if stat.S_ISSOCK(own.st_mode) else "device" if stat.S_ISCHR(own.st_mode)
            or stat.S_ISBLK(own.st_mode) else "special file")
    return f"not a regular file ({kind})"


def disk_stat(path: Path) -> os.stat_result:
    """What the ledger compares: the stat of what ``path`` leads to, or of the link itself if it leads nowhere."""
    try:
        return path.stat()
    except (OSError, RuntimeError):
        return path.lstat()


def walk_files(root: Path) -> Iterator[Path]:
    """Every non-directory entry under ``root`` (or ``root`` itself), sorted, without following symlinked
    directories; unreadable folders are skipped, never raised.

    Symlinks, FIFOs and other special files are yielded too: callers decide with :func:`unusable_reason`.
    Hidden and temporary names are yielded too: the caller records them as ignored.
    """
    if not root.is_dir() or root.is_symlink():
        if root.is_symlink() or root.exists():
            yield root
        return
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        kept = []
        for name in sorted(dirnames):
            if name.startswith("."):
                continue
            if os.path.islink(os.path.join(dirpath, name)):
                filenames.append(name)  # a symlinked folder is reported (and ignored), never entered
            else:
                kept.append(name)
        dirnames[:] = kept
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
        if unusable_reason(path, root) is None:
            return path
    if dfs_raw.is_dir():
        for path in walk_files(dfs_raw):
            if path.name == name and unusable_reason(path, dfs_raw) is None:
                return path
    return None
