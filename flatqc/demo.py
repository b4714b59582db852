"""``make demo``: weeks of synthetic history processed at once, then ``flatqc up`` (own Redis, SQLite, local folders)
fed a synthetic night file by file.

First the history (:mod:`qc.synth_history`: ``--history-days`` nights before tonight in three settings of their own,
a slow lamp drift and one lamp 20 % weaker from a date on) is written to ``<root>/history/`` and processed at once by
the batch path of ``flatqc process`` (:func:`flatqc.batch.process_paths`, several sets at a time, in MJD order per
setting), so trends and statistical scores have weeks of points before tonight. It is not under the watched tree:
the service never sees those files, only their sets and QC1 rows in the database (a watcher that found them would
record them as files waiting, since their sets are done already). The thresholds the scores use are
written to ``<root>/thresholds/`` (contract 9; the setting ``thresholds_dir``). Then tonight: the history's settings'
sets of tonight and the synthetic night (:func:`qc.synth.write_night`) are delivered to the running service.

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
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from itertools import repeat
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import select

from flatqc.batch import cores, process_paths
from flatqc.console import make_console
from flatqc.db import WARNING, alerts, connect, crires_flat, findings_from_json, sets
from flatqc.settings import DEMO_CONFIG, Settings
from flatqc.synthetic_delivery import Delivery, deliver_file, delivery_plan
from flatqc.up import Service, flatqc_command
from qc.certify import sentence
from qc.profiles import PROFILES
from qc.records import QC1_NAMES
from qc.scores import worst
from qc.synth import write_night
from qc.synth_common import SynthSet
from qc.synth_history import HISTORY_MANIFEST, history_plan, write_history_manifest, write_planned_set

FINAL_STATES = ("done", "failed", "rejected", "incomplete")


class Reporter:
    """Prints each set once it is final (with its QC1 rows) and each new alert or warning."""

    def __init__(self, console: Console, db_url: str) -> None:
        self.console = console
        self.engine = connect(db_url)
        self.seen_sets: set[str] = set()
        self.seen_alerts: set[int] = set()
        self.printed = 0
        """Sets printed (those already there at :meth:`skip_existing` not counted)."""

    def skip_existing(self) -> None:
        """Take the sets and alerts in the database now (the history's) as seen: only tonight's are printed."""
        with self.engine.connect() as conn:
            self.seen_sets.update(conn.execute(select(sets.c.version)).scalars())
            self.seen_alerts.update(conn.execute(select(alerts.c.id)).scalars())

    def __call__(self) -> None:
        with self.engine.connect() as conn:
            for row in conn.execute(select(sets).where(sets.c.state.in_(FINAL_STATES))):
                if row.version in self.seen_sets:
                    continue
                self.seen_sets.add(row.version)
                self.printed += 1
                colour = {"passed": "green", "failed": "red"}.get(row.verdict or "", "yellow")
                line = f"set {row.set_id} {row.setting_key or ''} N={row.n_raw}: [bold]{row.state}[/]"
                if row.verdict:
                    line += f" [{colour}]{row.verdict.upper()}[/]"
                self.console.print(line + (f" ({row.reason})" if row.reason else ""))
                for qc1 in conn.execute(select(crires_flat).where(crires_flat.c.version == row.version)):
                    snr = f"{qc1.median_snr:.0f}" if qc1.median_snr is not None else "n/a"
                    self.console.print(f"    det {qc1.detector}: mean_flux {qc1.mean_flux:7.1f} ADU/s  rms_master "
                                       f"{qc1.rms_master:.3f}  median_snr {snr:>5}  max_flux {qc1.max_flux:7.0f}"
                                       f"{flagged(dict(qc1._mapping))}")
            for alert in conn.execute(select(alerts)):
                if alert.id not in self.seen_alerts:
                    self.seen_alerts.add(alert.id)
                    reasons = "; ".join(map(sentence, findings_from_json(alert.reasons)))
                    kind = "[yellow]WARNING" if alert.severity == WARNING else "[bold red]ALERT"
                    self.console.print(f"{kind} #{alert.id}[/] set {alert.set_id}: {reasons}")


SCORE_STYLE = {"warn": "yellow", "fail": "bold red"}


def flagged(qc1: Mapping[str, Any]) -> str:
    """`` score fail: mean_flux fail, rms_master warn`` for a QC1 row scored warn or fail (contract 9), else ``""``."""
    if qc1.get("score") not in SCORE_STYLE:
        return ""
    found = [f"{name} {qc1[f'score_{name}']}" for name in QC1_NAMES if qc1.get(f"score_{name}") in SCORE_STYLE]
    return f"  [{SCORE_STYLE[qc1['score']]}]score {qc1['score']}: {', '.join(found)}[/]"


@click.command()
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=DEMO_CONFIG.parent, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--timeout", type=float, default=300.0, show_default=True)
@click.option("--history-days", type=click.IntRange(min=0), default=42, show_default=True,
              help="Nights of synthetic history before tonight (three settings of their own, a lamp drift and a "
                   "lamp 20 % weaker from a date on), processed at once before the service starts; 0: none.")
@click.option("--exit", "exit_after", is_flag=True,
              help="Stop the service after the night instead of serving the dashboard until Ctrl-C.")
def main(root: Path, seed: int, timeout: float, history_days: int, exit_after: bool) -> None:
    """Process weeks of synthetic history at once, then feed a synthetic night to a local ``flatqc up`` and print
    what happens."""
    console = make_console()
    shutil.rmtree(root, ignore_errors=True)
    staging, tree = root / "staging", root / "tree"
    manifest = write_night(staging, seed=seed)
    shutil.copytree(staging / "reference", tree / "reference")
    settings = Settings(
        dfs_product=tree / "dfs_product", dfs_raw=tree / "dfs_raw", qc_reference=tree / "reference",
        qc_output=tree / "qc", run_dir=root / "run", db_url=f"sqlite:///{root / 'flatqc.db'}", redis_url=None,
        incomplete_timeout_s=15, rescan_interval_s=5, file_settle_s=1, truncated_after_s=5,
        thresholds_dir=root / "thresholds",
    )
    write_thresholds(settings, root / "thresholds")
    config = write_config(settings, root / DEMO_CONFIG.name)
    tonight_history = prepare_history(console, settings, root, staging, manifest.night, history_days, seed)
    report = Reporter(console, settings.db_url)
    report.skip_existing()
    service = Service(settings, web=True)
    service.start()
    dashboard = f"http://{settings.web_host}:{service.web.server_port}/" if service.web else "not running"
    console.print(f"[bold]flatqc up[/]: own Redis on {service.redis.port if service.redis else '?'}, "
                  f"{service.n_workers} workers, watching {tree}, dashboard {dashboard}")
    try:
        for item in tonight_deliveries(tonight_history) + delivery_plan(staging):
            deliver_file(staging / item.relative, tree / item.relative, item.mode)
            console.print(f"[dim]delivered ({item.mode}) {item.relative}[/]")
            report()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and report.printed < len(manifest.sets) + len(tonight_history):
            time.sleep(1)
            report()
        time.sleep(2)
        report()
        env = dict(os.environ) | {"FLATQC_CONFIG": str(config)}
        for verb in ("status", "alerts"):
            subprocess.run(flatqc_command(verb), env=env, check=False)
        console.print(f"QC1 rows: {root / 'flatqc.db'} (table crires_flat); pictures and trend reports under "
                      f"{tree / 'qc'}; thresholds in {root / 'thresholds'}")
        console.print(look_again(config, settings.web_port), markup=False, highlight=False)
        if not exit_after:
            console.print(f"[bold]the dashboard stays up: {dashboard}[/] (Ctrl-C stops the service)")
            service.wait()
    finally:
        service.stop()


def prepare_history(console: Console, settings: Settings, root: Path, staging: Path, night: str, days: int,
                    seed: int) -> list[SynthSet]:
    """Write the ``days`` nights of history before ``night`` to ``<root>/history/`` (``dfs_product/``,
    ``dfs_raw/``) and process them at once into the database of ``settings`` (``flatqc process``'s batch path: no
    queue, no watcher; sets in MJD order per setting, so each set's last good set is an earlier one), with progress
    bars; write tonight's sets of the history's settings to ``staging`` (to be delivered with the night) and return
    them (paths relative to ``staging``). ``<root>/history.json`` lists every history set with its lamp factors
    (paths relative to ``<root>/history/`` or, tonight's, to the tree they are delivered to)."""
    if days == 0:
        return []
    started = time.monotonic()
    plan = history_plan(night, days, seed)
    earlier = plan.sets_of(plan.nights[:-1])
    history = (root / "history").resolve()  # absolute paths in the database, as the watcher records them
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        writing = progress.add_task(f"writing {days} nights of history", total=len(earlier))
        written = []
        with ProcessPoolExecutor(cores(), mp_context=multiprocessing.get_context("fork")) as pool:
            for planned, entry in zip(earlier, pool.map(write_planned_set, repeat(history), earlier, chunksize=4),
                                      strict=True):
                written.append((planned, entry))
                progress.advance(writing)
        processing = progress.add_task("processing it (flatqc process)", total=len(earlier))
        engine = connect(settings.db_url)
        try:
            result = process_paths([history], settings, engine, with_alerts=True, jobs=cores(),
                                   on_set=lambda _: progress.advance(processing))
        finally:
            engine.dispose()
    tonight = [(planned, write_planned_set(staging, planned)) for planned in plan.sets_of([night])]
    write_history_manifest(root / HISTORY_MANIFEST, plan, written + tonight)
    verdicts = Counter(outcome.result.certification.verdict for _, outcome in result.done)
    step = ""
    if plan.step_night is not None:
        key = next(p.setting.setting_key for p in plan.sets if p.setting.name == plan.step_setting)
        step = f"; the lamp of {key} is {1 - plan.step_factor:.0%} weaker from {plan.step_night} on"
    unprocessed = f"; {len(result.failed_sets)} not processed" if result.failed_sets else ""
    scores = Counter(set_scores(settings.db_url).values())
    console.print(f"[bold]history[/]: {len(result.done)} sets in {len({p.setting.name for p in earlier})} settings, "
                  f"nights {plan.nights[0]} .. {plan.nights[-2]}, written and processed in "
                  f"{time.monotonic() - started:.0f} s ({', '.join(f'{n} {v}' for v, n in sorted(verdicts.items()))}"
                  f"{unprocessed}); the lamps lose {plan.drift_per_night:.2%} a night{step}; set scores: "
                  + ", ".join(f"{scores[s]} {s or 'none'}" for s in ("ok", "warn", "fail", None) if scores[s]))
    return [entry for _, entry in tonight]


def set_scores(db_url: str) -> dict[str, str | None]:
    """Each set's score (the worst of its QC1 rows, contract 9), by set id."""
    engine = connect(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(crires_flat.c.set_id, crires_flat.c.score)).all()
    finally:
        engine.dispose()
    by_set: dict[str, list[str | None]] = {}
    for set_id, score in rows:
        by_set.setdefault(set_id, []).append(score)
    return {set_id: worst(values) for set_id, values in by_set.items()}


def tonight_deliveries(entries: list[SynthSet]) -> list[Delivery]:
    """The files of tonight's sets of the history's settings, raws first (renamed into place)."""
    return [Delivery(Path(path), "rename") for entry in entries for path in (*entry.raws, entry.master, entry.bpm)]


THRESHOLDS_FILE = "demo-2006-01-01.toml"
"""The demo's threshold file, in ``<root>/thresholds/``."""
STATISTICAL_PARAMETERS = ("mean_flux", "rms_master", "median_snr")
"""QC1 parameters the demo scores against their own history (contract 9, kind ``statistical``)."""
MIN_POINTS = 14
"""Earlier rows a statistical score needs in the demo (contract 9's default is 5): the bands of the first 5 to 13
nights of the history, their MAD from so few values, flagged a few healthy sets as ``fail``; from 14 on only the
lamp step does (and some values 3 to 5 spreads out, ``warn``, as noise and drift will)."""


def write_thresholds(settings: Settings, folder: Path) -> Path:
    """The demo's threshold file (contract 9) in ``folder``, valid from 2006-01-01 (before the first CRIRES flat):
    each profile's certification limits (contract 5) as fixed ``fail`` thresholds (median_snr low, max_flux high),
    its HealthCheck trend limits (contract 7) as fixed ``warn`` thresholds per setting, and statistical thresholds
    on mean_flux, rms_master and median_snr (90 days; warn beyond 3, fail beyond 5 x 1.4826 MAD; at least
    :data:`MIN_POINTS` earlier rows: the MAD of fewer is too unsteady). Returns the file."""
    lines = ["# Thresholds of `make demo` (python -m flatqc.demo), data contract section 9; the setting",
             "# FLATQC_THRESHOLDS_DIR names this folder.", "valid_from = 2006-01-01", ""]

    def threshold(comment: str = "", **fields: str | float | int) -> None:
        lines.extend([*([f"# {comment}"] if comment else []), "[[threshold]]",
                      *(f"{key} = {json.dumps(value)}" for key, value in fields.items()), ""])

    for name in sorted(PROFILES):
        config = settings.qc_config(name)
        threshold(f"{name}: certification (contract 5)", parameter="median_snr", kind="fixed", profile=name,
                  low=config.snr_limit, severity="fail")
        threshold(parameter="max_flux", kind="fixed", profile=name, high=config.max_flux_limit, severity="fail")
        for key, limits in sorted(config.trend_limits.items()):
            for parameter in ("mean_flux", "rms_master"):
                low, high = getattr(limits, parameter)
                threshold(f"{name}: HealthCheck trend limits (contract 7)" if parameter == "mean_flux" else "",
                          parameter=parameter, kind="fixed", profile=name, setting=key, low=low, high=high,
                          severity="warn")
    for index, parameter in enumerate(STATISTICAL_PARAMETERS):
        threshold("every profile, setting and detector against its own last 90 days" if index == 0 else "",
                  parameter=parameter, kind="statistical", window_days=90, min_points=MIN_POINTS, k_warn=3.0,
                  k_fail=5.0)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / THRESHOLDS_FILE
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def write_config(settings: Settings, path: Path) -> Path:
    """The demo's settings as a TOML file for ``FLATQC_CONFIG`` (absolute paths: usable from any folder)."""
    values = {name: str(getattr(settings, name).resolve()) for name in ("dfs_product", "dfs_raw", "qc_reference",
                                                                        "qc_output", "run_dir")}
    if settings.thresholds_dir is not None:
        values["thresholds_dir"] = str(settings.thresholds_dir.resolve())
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
