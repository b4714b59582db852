"""Click commands, one module per group of verbs; :mod:`flatqc.cli` registers them."""
