"""``make demo``: run ``flatqc up`` on a local tree and feed it a synthetic night file by file.

Some files are written slowly, some renamed into place, one set's products arrive before its raws, one file is
delivered twice. QC1 results and alerts are printed as they happen; the demo stops the service when every set of
the night has reached its final state (or after ``--timeout`` seconds).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
from rich.console import Console
from sqlalchemy import select

from flatqc.db import alerts, connect, crires_flat, sets
from flatqc.delivery import Delivery, deliver_file
from qc.synth import load_manifest, write_night

FINAL_STATES = ("done", "failed", "rejected", "incomplete")


def delivery_plan(staging: Path) -> list[Delivery]:
    """Raws and products of the night in an order and with modes that exercise the watcher."""
    manifest = load_manifest(staging / "manifest.json")
    plan: list[Delivery] = []
    modes = ("in_place", "slow", "rename")
    for index, entry in enumerate(manifest.sets):
        raws = [Delivery(Path(p), modes[(index + k) % 3]) for k, p in enumerate(entry.raws)]
        products = [Delivery(Path(p), "rename") for p in (entry.master, entry.bpm) if p]
        plan += products + raws if index == 0 else raws + products
    plan += [Delivery(Path(j.path)) for j in manifest.junk]
    if plan:
        plan.append(Delivery(plan[0].relative, "duplicate"))
    return plan


@click.command()
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=Path("var/demo"), show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--timeout", type=float, default=300.0, show_default=True)
def main(root: Path, seed: int, timeout: float) -> None:
    """Feed a synthetic night to a local ``flatqc up`` and print what happens."""
    console = Console()
    shutil.rmtree(root, ignore_errors=True)
    staging, tree = root / "staging", root / "tree"
    manifest = write_night(staging, seed=seed)
    shutil.copytree(staging / "reference", tree / "reference")
    env = os.environ | {
        "FLATQC_DFS_PRODUCT": str(tree / "dfs_product"), "FLATQC_DFS_RAW": str(tree / "dfs_raw"),
        "FLATQC_QC_REFERENCE": str(tree / "reference"), "FLATQC_QC_OUTPUT": str(tree / "qc"),
        "FLATQC_DB_URL": f"sqlite:///{root / 'flatqc.db'}", "FLATQC_INCOMPLETE_TIMEOUT_S": "20",
        "FLATQC_RESCAN_INTERVAL_S": "10", "FLATQC_FILE_SETTLE_S": "1",
    }
    env.pop("FLATQC_REDIS_URL", None)
    for sub in ("dfs_product", "dfs_raw", "qc"):
        (tree / sub).mkdir(parents=True, exist_ok=True)
    engine = connect(env["FLATQC_DB_URL"])
    log = open(root / "service.log", "wb")
    service = subprocess.Popen([sys.executable, "-m", "flatqc.cli", "-v", "up"], env=env, stdout=log, stderr=log)
    console.print(f"[bold]flatqc up[/] started (pid {service.pid}); log in {root / 'service.log'}")
    seen_sets: set[str] = set()
    seen_alerts: set[int] = set()

    def report() -> None:
        with engine.connect() as conn:
            for row in conn.execute(select(sets).where(sets.c.state.in_(FINAL_STATES))):
                if row.version in seen_sets:
                    continue
                seen_sets.add(row.version)
                colour = {"passed": "green", "failed": "red"}.get(row.verdict or "", "yellow")
                line = f"set {row.set_id} {row.setting_key or ''} N={row.n_raw}: [bold]{row.state}[/]"
                if row.verdict:
                    line += f" [{colour}]{row.verdict.upper()}[/]"
                console.print(line + (f" ({row.reason})" if row.reason else ""))
                for qc1 in conn.execute(select(crires_flat).where(crires_flat.c.version == row.version)):
                    console.print(f"    det {qc1.detector}: mean_flux {qc1.mean_flux:.1f} ADU/s, rms_master "
                                  f"{qc1.rms_master:.3f}, median_snr {qc1.median_snr}, max_flux {qc1.max_flux:.0f}")
            for alert in conn.execute(select(alerts)):
                if alert.id not in seen_alerts:
                    seen_alerts.add(alert.id)
                    console.print(f"[bold red]ALERT[/] #{alert.id} set {alert.set_id}: {alert.reasons}")

    try:
        time.sleep(3)
        for item in delivery_plan(staging):
            deliver_file(staging / item.relative, tree / item.relative, item.mode)
            console.print(f"[dim]delivered ({item.mode}) {item.relative}[/]")
            report()
        deadline = time.monotonic() + timeout
        expected = len(manifest.sets)
        while time.monotonic() < deadline and len(seen_sets) < expected and service.poll() is None:
            time.sleep(1)
            report()
        subprocess.run([sys.executable, "-m", "flatqc.cli", "status"], env=env, check=False)
    finally:
        service.send_signal(signal.SIGTERM)
        service.wait(30)
        log.close()
    console.print(f"QC1 table {root / 'flatqc.db'} (crires_flat), pictures under {tree / 'qc'}")


if __name__ == "__main__":
    main()
