"""``make demo``: run ``flatqc up`` (own Redis, SQLite, local folders) and feed it a synthetic night file by file.

Some files are written slowly, some renamed into place, one set's products arrive before its raws, one file is
delivered twice, junk files too. QC1 results and alerts are printed as they happen. When every set of the night has
reached its final state (or after ``--timeout`` seconds) it prints ``flatqc status`` and ``flatqc alerts`` and keeps
the service and dashboard running until Ctrl-C (``--exit``: stop at once).

Its settings are written to ``<root>/flatqc.toml`` (:data:`DEMO_CONFIG` by default), so that
``FLATQC_CONFIG=var/demo/flatqc.toml flatqc status | alerts | web`` look at the demo's database and pictures, then and
later; the commands print that hint themselves when the default database is empty and that file exists.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import click
from rich.console import Console
from sqlalchemy import select

from flatqc.console import make_console
from flatqc.db import WARNING, alerts, connect, crires_flat, findings_from_json, sets
from flatqc.settings import DEMO_CONFIG, Settings
from flatqc.synthetic_delivery import deliver_file, delivery_plan
from flatqc.up import Service, flatqc_command
from qc.certify import sentence
from qc.synth import write_night

FINAL_STATES = ("done", "failed", "rejected", "incomplete")


class Reporter:
    """Prints each set once it is final (with its QC1 rows) and each new alert or warning."""

    def __init__(self, console: Console, db_url: str) -> None:
        self.console = console
        self.engine = connect(db_url)
        self.seen_sets: set[str] = set()
        self.seen_alerts: set[int] = set()

    def __call__(self) -> None:
        with self.engine.connect() as conn:
            for row in conn.execute(select(sets).where(sets.c.state.in_(FINAL_STATES))):
                if row.version in self.seen_sets:
                    continue
                self.seen_sets.add(row.version)
                colour = {"passed": "green", "failed": "red"}.get(row.verdict or "", "yellow")
                line = f"set {row.set_id} {row.setting_key or ''} N={row.n_raw}: [bold]{row.state}[/]"
                if row.verdict:
                    line += f" [{colour}]{row.verdict.upper()}[/]"
                self.console.print(line + (f" ({row.reason})" if row.reason else ""))
                for qc1 in conn.execute(select(crires_flat).where(crires_flat.c.version == row.version)):
                    snr = f"{qc1.median_snr:.0f}" if qc1.median_snr is not None else "n/a"
                    self.console.print(f"    det {qc1.detector}: mean_flux {qc1.mean_flux:7.1f} ADU/s  rms_master "
                                       f"{qc1.rms_master:.3f}  median_snr {snr:>5}  max_flux {qc1.max_flux:7.0f}")
            for alert in conn.execute(select(alerts)):
                if alert.id not in self.seen_alerts:
                    self.seen_alerts.add(alert.id)
                    reasons = "; ".join(map(sentence, findings_from_json(alert.reasons)))
                    kind = "[yellow]WARNING" if alert.severity == WARNING else "[bold red]ALERT"
                    self.console.print(f"{kind} #{alert.id}[/] set {alert.set_id}: {reasons}")


@click.command()
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=DEMO_CONFIG.parent, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--timeout", type=float, default=300.0, show_default=True)
@click.option("--exit", "exit_after", is_flag=True,
              help="Stop the service after the night instead of serving the dashboard until Ctrl-C.")
def main(root: Path, seed: int, timeout: float, exit_after: bool) -> None:
    """Feed a synthetic night to a local ``flatqc up`` and print what happens."""
    console = make_console()
    shutil.rmtree(root, ignore_errors=True)
    staging, tree = root / "staging", root / "tree"
    manifest = write_night(staging, seed=seed)
    shutil.copytree(staging / "reference", tree / "reference")
    settings = Settings(
        dfs_product=tree / "dfs_product", dfs_raw=tree / "dfs_raw", qc_reference=tree / "reference",
        qc_output=tree / "qc", run_dir=root / "run", db_url=f"sqlite:///{root / 'flatqc.db'}", redis_url=None,
        incomplete_timeout_s=15, rescan_interval_s=5, file_settle_s=1, truncated_after_s=5,
    )
    config = write_config(settings, root / DEMO_CONFIG.name)
    service = Service(settings, web=True)
    service.start()
    dashboard = f"http://{settings.web_host}:{service.web.server_port}/" if service.web else "not running"
    console.print(f"[bold]flatqc up[/]: own Redis on {service.redis.port if service.redis else '?'}, "
                  f"{service.n_workers} workers, watching {tree}, dashboard {dashboard}")
    report = Reporter(console, settings.db_url)
    try:
        for item in delivery_plan(staging):
            deliver_file(staging / item.relative, tree / item.relative, item.mode)
            console.print(f"[dim]delivered ({item.mode}) {item.relative}[/]")
            report()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(report.seen_sets) < len(manifest.sets):
            time.sleep(1)
            report()
        time.sleep(2)
        report()
        env = dict(os.environ) | {"FLATQC_CONFIG": str(config)}
        for verb in ("status", "alerts"):
            subprocess.run(flatqc_command(verb), env=env, check=False)
        console.print(f"QC1 rows: {root / 'flatqc.db'} (table crires_flat); pictures and trend reports under "
                      f"{tree / 'qc'}")
        console.print(look_again(config, settings.web_port), markup=False, highlight=False)
        if not exit_after:
            console.print(f"[bold]the dashboard stays up: {dashboard}[/] (Ctrl-C stops the service)")
            service.wait()
    finally:
        service.stop()


def write_config(settings: Settings, path: Path) -> Path:
    """The demo's settings as a TOML file for ``FLATQC_CONFIG`` (absolute paths: usable from any folder)."""
    values = {name: str(getattr(settings, name).resolve()) for name in ("dfs_product", "dfs_raw", "qc_reference",
                                                                        "qc_output", "run_dir")}
    values["db_url"] = f"sqlite:///{Path(settings.db_url.removeprefix('sqlite:///')).resolve()}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# written by `make demo` (python -m flatqc.demo): FLATQC_CONFIG=<this file> flatqc status\n"
                    + "".join(f"{name} = {json.dumps(value)}\n" for name, value in values.items()), encoding="utf-8")
    return path


def look_again(config: Path, port: int) -> str:
    """The commands that show the demo's results again, now or after it stopped."""
    script = Path(sys.executable).parent / "flatqc"
    if script.is_relative_to(Path.cwd()):
        script = script.relative_to(Path.cwd())
    command = f"FLATQC_CONFIG={config} {script if script.exists() else 'flatqc'}"
    return "\n".join(["To look again (now, or after Ctrl-C):",
                      *(f"  {command} {verb}" for verb in ("status", "alerts", "web")),
                      f"  (flatqc web serves {config.parent / 'flatqc.db'} on port {port}: stop the demo first)"])


if __name__ == "__main__":
    main()
