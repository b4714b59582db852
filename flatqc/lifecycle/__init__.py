"""The one owner of every state change: one module per life cycle, :mod:`~flatqc.lifecycle.files` (file versions),
:mod:`~flatqc.lifecycle.sets` (set versions and the attempts of their jobs) and :mod:`~flatqc.lifecycle.alerts`.

No other module writes ``files.state``, ``sets.state`` or ``alerts.state``. Each transition runs in the caller's
transaction (a watcher round, or a job's result: QC1 rows, set state and alert commit together) and checks the state
it starts from. A refused transition raises :class:`TransitionRefused`; let it leave the ``engine.begin()`` block
and nothing of that unit of work is committed, then say so in one log line.
"""

from __future__ import annotations


class TransitionRefused(Exception):
    """A transition was asked of a row that is not in a state it starts from (``current``: the state it is in)."""

    def __init__(self, message: str, current: str | None) -> None:
        super().__init__(message)
        self.current = current


class StaleAttempt(TransitionRefused):
    """A late writer: the set was queued again or taken by another attempt since this attempt took it (its token is
    no longer the set's), so whatever this attempt found is not written."""
