"""The rich console every command prints to, and the printed report of ``flatqc process``."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from flatqc.files import safe_text, shown
from qc.certify import sentence
from qc.numbers import format_number
from qc.records import QC1_NAMES

if TYPE_CHECKING:  # every command makes its console here: not worth the QC's imports
    from flatqc.batch import ProcessReport
    from flatqc.set_qc import SetOutcome

PIPE_WIDTH = 160
"""Line width when output goes to a pipe or file (rich would otherwise wrap at 80 columns)."""


def make_console(stderr: bool = False) -> Console:
    """A rich console: the terminal's width on a terminal, PIPE_WIDTH otherwise."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else PIPE_WIDTH)


def plural(count: int, noun: str) -> str:
    """``1 set``, ``2 sets``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


VERDICT_STYLE = {"passed": "bold green", "failed": "bold red", "not_assessable": "bold yellow"}


def qc1_table(set_id: str, outcome: SetOutcome) -> Table:
    """QC1 values of one set: a row per parameter, a column per detector (fits any terminal)."""
    result = outcome.result
    table = Table(title=f"QC1 {set_id}  {result.setting_key}  {result.raw_type}  N={result.n_raw}",
                  title_justify="left")
    table.add_column("parameter")
    for det in result.detectors:
        table.add_column(f"det {det.detector}", justify="right")
    failing = {(c.name, c.detector) for c in result.certification.checks if c.passed is False}
    bit_names = list(result.detectors[0].bpm_bits) if result.detectors else []  # CRIRES+ per-bit BPM counts
    for name in (*QC1_NAMES, *bit_names):
        cells = [format_number(d.qc1()[name]) for d in result.detectors]
        table.add_row(name, *(f"[bold red]{c}[/]" if (name, d.detector) in failing else c
                              for c, d in zip(cells, result.detectors, strict=True)))
    return table


def print_report(report: ProcessReport, console: Console) -> None:
    """Sets with verdicts, QC1 values per detector, then every unusable file or set with its reason."""
    verdicts = Table(title="Flat sets", show_lines=False)
    for name in ("set", "night", "setting key", "type", "N", "verdict", "reasons / notes"):
        verdicts.add_column(name)
    for flatset, outcome in report.done:
        cert = outcome.result.certification
        verdicts.add_row(
            flatset.set_id, flatset.night, flatset.setting_key, outcome.result.raw_type, str(flatset.n_raw),
            f"[{VERDICT_STYLE[cert.verdict]}]{cert.verdict.upper()}[/]",
            "\n".join((*map(sentence, (*cert.reasons, *cert.notes)), outcome.result.reference_note)),
        )
    console.print(verdicts)

    for flatset, outcome in report.done:
        console.print(qc1_table(flatset.set_id, outcome))
    for set_id, reason in report.failed_sets:
        console.print(f"[red]rejected set[/] {set_id}: {escape(safe_text(reason))}")
    for set_id, missing in report.incomplete:
        console.print(f"[yellow]incomplete set[/] {set_id}: {missing}")
    for note in report.files:
        style = "red" if note.state == "rejected" else "dim"
        console.print(f"[{style}]{note.state} file[/] {escape(shown(note.path))}: {escape(safe_text(note.reason))}")
    for raised in report.alerts:
        console.print(f"[red]{raised.severity} #{raised.id}[/] recorded for set {raised.set_id} (flatqc alerts)")
    console.print(
        f"{len(report.done)} sets processed "
        f"({sum(o.result.certification.verdict == 'failed' for _, o in report.done)} failed certification), "
        f"{len(report.failed_sets)} rejected, {len(report.incomplete)} incomplete, {len(report.files)} files not used"
    )
    where = [f"QC1 rows and set states: {report.database}",
             f"PNGs and cover sheets: {report.pictures}/<night>/<set_id>/",
             f"references: {report.reference}" + ("" if report.reference.is_dir() else " (not found)")]
    where += [f"not read (QC output or references): {folder}" for folder in report.skipped]
    for line in where:
        console.print(escape(safe_text(line)), highlight=False)
