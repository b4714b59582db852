"""``flatqc synth`` and ``flatqc process``: the science without any queue."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click
from rich.progress import Progress

from flatqc.batch import ProcessReport, cores, process_paths
from flatqc.console import make_console, print_report
from flatqc.db import ALERT, connect
from flatqc.settings import Settings
from flatqc.threshold_files import thresholds_of
from qc.certify import sentence
from qc.profiles import PROFILES
from qc.thresholds import ThresholdFileError


@click.command()
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder to write dfs_product/, dfs_raw/, reference/ and manifest.json into.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed (same seed, same bytes).")
@click.option("--night", default=None,
              help="Night DATE (YYYY-MM-DD); default 2010-05-12 (crires), 2023-03-15 (crires+).")
@click.option("--profile", type=click.Choice(sorted(PROFILES)), default="crires", show_default=True,
              help="Instrument: crires+ writes 2048 x 2048 x 3 files (~50 MB per raw, ~200 MB per master).")
@click.option("--set", "sets", multiple=True, help="Write only the set(s) with this name (repeatable).")
@click.option("--history-days", type=click.IntRange(min=0), default=0, show_default=True,
              help="Also write a history (crires only): the N nights before NIGHT and NIGHT itself, in three settings "
                   "of their own (windowed read-outs of 32 rows), one set of 3 raws per setting and night, on some "
                   "nights two; the lamps lose 0.15 % of their flux a night and one lamp "
                   "(1645.000_25.000_Halogen) is 20 % weaker from two thirds of the way on; listed with every "
                   "set's lamp factors in history.json. 42 days: ~155 sets, ~360 MB.")
def synth(out: Path, seed: int, night: str | None, profile: str, sets: tuple[str, ...], history_days: int) -> None:
    """Write a synthetic night (raws, masters, BPMs, references, junk) for tests and the demo.

    With --history-days also weeks of history up to that night, for trends and statistical scores.
    """
    from qc.synth import write_night
    from qc.synth_history import HISTORY_MANIFEST, HISTORY_PROFILE, history_plan, write_history

    if history_days and profile != HISTORY_PROFILE.name:
        raise click.UsageError(f"--history-days writes {HISTORY_PROFILE.title} nights only "
                               f"(--profile {HISTORY_PROFILE.name})")
    manifest = write_night(out, seed=seed, night=night, profile=profile, sets=list(sets) or None)
    console = make_console()
    console.print(f"wrote {len(manifest.sets)} sets and {len(manifest.junk)} junk files under {out}")
    if history_days:
        history = write_history(out, history_plan(manifest.night, history_days, seed))
        console.print(f"and a history of {len(history['sets'])} sets, nights {history['nights'][0]} .. "
                      f"{history['nights'][-1]} ({out / HISTORY_MANIFEST})")
    console.print(f"products: {out / 'dfs_product'}  raws: {out / 'dfs_raw'}  references: {out / 'reference'}")


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--db", "db_url", default=None, help="Database URL (default: FLATQC_DB_URL, sqlite:///./var/flatqc.db).")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the PNGs (default: FLATQC_QC_OUTPUT).")
@click.option("--reference", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Reference folder (default: FLATQC_QC_REFERENCE).")
@click.option("--raw", "raw_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Raw folder to look up raws in (default: FLATQC_DFS_RAW).")
@click.option("--alerts", "with_alerts", is_flag=True,
              help="Record alerts of failing sets and warnings of sets outside their trend limits, as the service "
                   "does, and notify them (FLATQC_ALERT_URLS; warnings only with FLATQC_NOTIFY_WARNINGS).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of tables.")
@click.option("--jobs", type=click.IntRange(min=1), default=None,
              help="Sets computed at once, each in a process of its own (default: the cores; 1: all here).")
def process(paths: tuple[Path, ...], db_url: str | None, out: Path | None, reference: Path | None,
            raw_dir: Path | None, with_alerts: bool, as_json: bool, jobs: int | None) -> None:
    """Process every complete flat set found under PATHS now, without a queue.

    Writes QC1 rows (replacing earlier ones of the same set), PNGs and cover sheets, and prints
    the results, every rejected, incomplete or ignored file with its reason, and where rows and PNGs went.
    QC output and reference folders under PATHS are skipped; references are taken from FLATQC_QC_REFERENCE,
    else from a reference/ folder in or beside PATHS. Failed certification is a result, not an error:
    the exit code is 0.
    """
    overrides: dict[str, Any] = {"db_url": db_url, "qc_output": out, "qc_reference": reference, "dfs_raw": raw_dir}
    settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    if settings.db_url.startswith("sqlite:///"):
        Path(settings.db_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = connect(settings.db_url)
    console = make_console(stderr=as_json)
    try:
        thresholds_of(settings)
    except ThresholdFileError as exc:
        console.print(f"threshold file broken: {exc}; sets are stored without scores (`flatqc rescore` scores them "
                      "once it is fixed)", style="yellow", markup=False, highlight=False)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("processing sets", total=None)
        report: ProcessReport = process_paths(
            paths, settings, engine, on_set=lambda sid: progress.update(task, advance=1, description=f"set {sid}"),
            with_alerts=with_alerts, jobs=jobs or cores(),
        )
    to_send = [raised.id for raised in report.alerts if raised.severity == ALERT or settings.notify_warnings]
    if to_send:
        from flatqc.notify import Notifier  # apprise: loaded when there is something to send

        Notifier.from_settings(settings).deliver_now(engine, to_send)
    if as_json:
        click.echo(json.dumps(report_as_dict(report), indent=2, default=str))
    else:
        print_report(report, make_console())


def report_as_dict(report: ProcessReport) -> dict:
    """The report as plain data (for ``--json`` and scripts)."""
    return {
        "sets": [
            {"set_id": fs.set_id, "night": fs.night, "setting_key": fs.setting_key, "n_raw": fs.n_raw,
             "raw_type": o.result.raw_type, "verdict": o.result.certification.verdict,
             "reasons": [sentence(r) for r in o.result.certification.reasons],
             "notes": [sentence(n) for n in o.result.certification.notes],
             "findings": [asdict(f) for f in o.result.findings],
             "reference": o.result.reference_note,
             "detectors": [d.qc1() | {"detector": d.detector} for d in o.result.detectors],
             "plots": {k: str(v) for k, v in o.plots.items()}}
            for fs, o in report.done
        ],
        "rejected_sets": [{"set_id": s, "reason": r} for s, r in report.failed_sets],
        "incomplete_sets": [{"set_id": s, "missing": r} for s, r in report.incomplete],
        "files": [{"path": str(n.path), "state": n.state, "reason": n.reason} for n in report.files],
        "database": report.database, "pictures": str(report.pictures), "reference": str(report.reference),
        "skipped": [str(p) for p in report.skipped],
        "alerts": [{"id": a.id, "set_id": a.set_id, "severity": a.severity} for a in report.alerts],
    }
