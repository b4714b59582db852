"""The service shell around :mod:`qc`: settings, database, command line, web."""

from qc import __version__

__all__ = ["__version__"]
