"""Pure science of the CRIRES flat-field QC: FITS reading, set grouping, QC1 statistics,
certification, plots and the synthetic night generator.

Nothing here talks to Redis, SQL or the network; every function takes arrays, headers,
paths and a :class:`qc.config.QCConfig` and returns typed records, so it can be used from a notebook.
"""

__version__ = "0.1.0"
