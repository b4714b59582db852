"""The ``flatqc`` command line (verbs fixed by design.md). Each verb lives in :mod:`flatqc.commands`."""

from __future__ import annotations

import logging

import click

from flatqc import __version__
from flatqc.commands import database, operations, science


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="flatqc")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def main(verbose: int) -> None:
    """Automatic quality control of CRIRES flat fields.

    Settings come from FLATQC_* environment variables or the TOML file named by FLATQC_CONFIG (see README).
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


for command in (science.synth, science.process, operations.up, operations.watch, operations.worker, operations.status,
                operations.backfill, operations.alerts, operations.web, database.db):
    main.add_command(command)
