"""The ``flatqc`` command line (verbs fixed by design.md). Each verb lives in :mod:`flatqc.commands` and is imported
only when it runs (or shows its own help): ``flatqc --help`` lists the verbs from :data:`COMMANDS` and imports none."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from typing import Any

import click

from flatqc import __version__

COMMANDS: Mapping[str, tuple[str, str]] = {
    "alerts": ("flatqc.commands.operations:alerts", "List alerts (failed certification) and warnings (trend limits); "
               "`flatqc alerts ack ID` acknowledges one."),
    "backfill": ("flatqc.commands.operations:backfill", "(Re)process the nights FROM..TO through the backfill queue "
                 "(taken by workers only when no job of tonight waits): record their files, queue complete sets."),
    "db": ("flatqc.commands.database:db", "The database's schema (FLATQC_DB_URL): upgrade it to the newest revision, "
           "or show its revision."),
    "export": ("flatqc.commands.export:export", "Write the QC1 rows of the nights FROM..TO as CSV or JSON, every "
               "column of the profile's table."),
    "process": ("flatqc.commands.science:process", "Process every complete flat set found under PATHS now, without a "
                "queue."),
    "rescore": ("flatqc.commands.scores:rescore", "Score every set of the nights FROM..TO again against the threshold "
                "file in force for its night."),
    "review": ("flatqc.commands.review:review", "Accept or reject sets (SET_IDs, or every set of --night) after "
               "looking at them, or show their decisions."),
    "status": ("flatqc.commands.operations:status", "Per night: sets done/queued/running/failed/incomplete, rejected "
               "and ignored files counted by reason (each file with --files), waiting files; queue and workers."),
    "synth": ("flatqc.commands.science:synth", "Write a synthetic night (raws, masters, BPMs, references, junk) for "
              "tests and the demo."),
    "thresholds": ("flatqc.commands.scores:thresholds", "List the threshold files of FLATQC_THRESHOLDS_DIR and the "
                   "thresholds in force for a night."),
    "up": ("flatqc.commands.operations:up", "Run everything here: Redis (own one unless FLATQC_REDIS_URL), the "
           "watcher, N workers."),
    "watch": ("flatqc.commands.operations:watch", "Run only the watcher (FLATQC_REDIS_URL required)."),
    "web": ("flatqc.commands.operations:web", "Serve the dashboard alone with waitress (reads the database, and Redis "
            "when reachable)."),
    "worker": ("flatqc.commands.operations:worker", "Run one rq worker on the service's queues: real-time QC, then "
               "pictures, then backfill (FLATQC_REDIS_URL required)."),
}
"""Verb -> (``module:attribute`` of its click command, the command's short help: the first sentence of its docstring,
as click would take it; ``tests/test_cli.py`` checks that the two agree)."""


class LazyGroup(click.Group):
    """A group whose commands are named in a table and imported when one is invoked or asked for its help; the
    group's own help lists them with their short help from the table, importing none."""

    def __init__(self, *args: Any, lazy: Mapping[str, tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self.lazy)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.lazy:
            return None
        module, attribute = self.lazy[cmd_name][0].split(":")
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command), f"{module}:{attribute} is not a click command"
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The commands section as click writes it (short help cut to the width), from the table."""
        limit = formatter.width - 6 - max(map(len, self.lazy))
        with formatter.section("Commands"):
            formatter.write_dl([(name, click.Command(name, help=self.lazy[name][1]).get_short_help_str(limit))
                                for name in self.list_commands(ctx)])


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="flatqc")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def main(verbose: int) -> None:
    """Automatic quality control of CRIRES flat fields.

    Settings come from FLATQC_* environment variables or the TOML file named by FLATQC_CONFIG (see README).
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
