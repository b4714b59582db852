"""The operator commands print for the stream they run with, not for the one there was when they were imported."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

IMPORTED_ON_A_TERMINAL = """
import sys
assert sys.stdout.isatty()
import flatqc.cli  # imported while stdout is a terminal, as under `pytest -s` in one
from click.testing import CliRunner
result = CliRunner().invoke(flatqc.cli.main, ["alerts"], catch_exceptions=False)
assert result.exit_code == 0, result.output
open(sys.argv[1], "w").write(result.output)
"""


def test_a_command_imported_on_a_terminal_prints_plain_text_into_a_pipe(tmp_path: Path) -> None:
    """A console made at import time keeps the terminal it saw (colour codes, its width) once the output is
    captured: `flatqc alerts` under CliRunner must print plain text all the same."""
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "COLUMNS")}
    env |= {"TERM": "xterm-256color", "FLATQC_DB_URL": f"sqlite:///{tmp_path / 'flatqc.db'}"}
    out = tmp_path / "output.txt"
    leader, follower = pty.openpty()
    try:
        done = subprocess.run([sys.executable, "-c", IMPORTED_ON_A_TERMINAL, str(out)], stdout=follower,
                              stderr=subprocess.PIPE, env=env, cwd=tmp_path, timeout=120)
    finally:
        os.close(follower)
        os.close(leader)
    assert done.returncode == 0, done.stderr.decode()
    text = out.read_text()
    assert "alerts" in text and "reasons" in text, text
    assert "\x1b[" not in text, repr(text)
