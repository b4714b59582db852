"""The command line loads a verb only when it runs: ``flatqc --help`` and ``flatqc status`` import only what they use
(structure, not time: ``bench/bench_cli_startup.py`` times it), and the verbs listed without loading them are the
verbs there are."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from flatqc.cli import COMMANDS, main

HEAVY = ("numpy", "astropy", "matplotlib", "PIL", "rq", "redis", "apprise", "flask", "watcher", "worker")
"""Packages a help text or a look at the ledger has no use for (science, queue, notification, web, processes)."""
QC_ONLY = ("numpy", "astropy", "matplotlib", "PIL", "apprise", "flask", "watcher", "worker")
"""What ``flatqc status`` itself has no use for (it reads the queue, so rq and redis are fine)."""

PROBE = """
import json, sys
from flatqc.cli import main
try:
    main(sys.argv[1:], prog_name="flatqc")
except SystemExit as exit:
    assert not exit.code, exit.code
print(json.dumps(sorted(sys.modules)))
"""


def imported_by(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> set[str]:
    """Top-level packages imported by ``flatqc ARGS`` run in a fresh interpreter."""
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, cwd=cwd, timeout=120,
                          env=os.environ | (env or {}))
    assert done.returncode == 0, done.stderr
    return {name.split(".")[0] for name in json.loads(done.stdout.splitlines()[-1])}


@pytest.mark.parametrize("args", [["--help"], ["status", "--help"], ["db", "--help"], ["db", "upgrade", "--help"]])
def test_help_imports_no_heavy_package(args: list[str], tmp_path: Path) -> None:
    assert sorted(imported_by(args, tmp_path) & set(HEAVY)) == []


def test_status_imports_no_science_processes_or_web(tmp_path: Path) -> None:
    env = {"FLATQC_DB_URL": f"sqlite:///{tmp_path / 'flatqc.db'}", "FLATQC_RUN_DIR": str(tmp_path / "run"),
           "FLATQC_REDIS_URL": "", "FLATQC_CONFIG": ""}
    assert sorted(imported_by(["status"], tmp_path, env) & set(QC_ONLY)) == []


def test_the_probe_sees_what_a_verb_imports(tmp_path: Path) -> None:
    """The probe is not blind: ``process --help`` loads the module of a verb that computes, and numpy with it."""
    assert {"numpy", "astropy"} <= imported_by(["process", "--help"], tmp_path)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_listed_short_help_is_the_commands_own(name: str) -> None:
    command = main.get_command(click.Context(main), name)
    assert command is not None and command.name == name
    assert COMMANDS[name][1] == command.get_short_help_str(limit=1000)


def test_help_lists_every_verb() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0, result.output
    listed = [line.split()[0] for line in result.output.split("Commands:")[1].splitlines() if line.strip()]
    assert listed == sorted(COMMANDS)


def test_an_unknown_verb_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["stauts"])
    assert result.exit_code == 2 and "No such command 'stauts'" in result.output
