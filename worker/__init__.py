"""rq workers: run the QC of one set version, store QC1 rows, trend reports and alerts."""
