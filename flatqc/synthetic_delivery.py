"""Deliver a synthetic night into a watched tree the way real archive tools do, for the demo, tests and benchmarks.

Modes: ``in_place`` (one write), ``slow`` (written in chunks with pauses: a half-written file is visible),
``rename`` (written under a temporary name, then renamed into place), ``duplicate`` (the same bytes delivered twice).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

MODES = ("in_place", "slow", "rename", "duplicate")


@dataclass(frozen=True)
class Delivery:
    """One file to deliver: ``relative`` path below both roots, and how."""

    relative: Path
    mode: str = "in_place"


def deliver_file(src: Path, dst: Path, mode: str, chunk_pause_s: float = 0.2, chunks: int = 4) -> None:
    """Copy ``src`` to ``dst`` using ``mode`` (see module doc)."""
    if mode not in MODES:
        raise ValueError(f"unknown delivery mode {mode!r}; choose one of {MODES}")
    dst.parent.mkdir(parents=True, exist_ok=True)
    if mode == "slow":
        data = src.read_bytes()
        step = max(1, len(data) // chunks)
        with open(dst, "wb") as fh:
            for start in range(0, len(data), step):
                fh.write(data[start:start + step])
                fh.flush()
                os.fsync(fh.fileno())
                time.sleep(chunk_pause_s)
    elif mode == "rename":
        tmp = dst.with_name(f".{dst.name}.part")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    else:
        shutil.copyfile(src, dst)
        if mode == "duplicate":
            time.sleep(chunk_pause_s)
            shutil.copyfile(src, dst)


def delivery_plan(night: Path, set_names: Iterable[str] | None = None, junk: bool = True) -> list[Delivery]:
    """The files of a synthetic night (paths relative to ``night``) in an order and with modes that exercise a
    watcher: the first set's products before its raws, the others raws first; in-place, slow and renamed writes
    in turn; the junk files; finally the first file delivered again with the same bytes."""
    from qc.synth import load_manifest

    manifest = load_manifest(night / "manifest.json")
    chosen = [s for s in manifest.sets if set_names is None or s.name in set_names]
    plan: list[Delivery] = []
    modes = ("in_place", "slow", "rename")
    for index, entry in enumerate(chosen):
        raws = [Delivery(Path(p), modes[(index + k) % 3]) for k, p in enumerate(entry.raws)]
        products = [Delivery(Path(p), modes[(index + k + 1) % 3]) for k, p in enumerate((entry.master, entry.bpm))
                    if p]
        plan += products + raws if index == 0 else raws + products
    if junk:
        plan += [Delivery(Path(j.path)) for j in manifest.junk]
    if plan:
        plan.append(Delivery(plan[0].relative, "duplicate"))
    return plan


def deliver_all(src_root: Path, dst_root: Path, plan: Iterable[Delivery], pause_s: float = 0.0,
                on_file: Callable[[Delivery], None] | None = None) -> None:
    """Deliver every file of ``plan`` from ``src_root`` to ``dst_root`` in order, ``pause_s`` apart."""
    for item in plan:
        deliver_file(src_root / item.relative, dst_root / item.relative, item.mode)
        if on_file:
            on_file(item)
        time.sleep(pause_s)
