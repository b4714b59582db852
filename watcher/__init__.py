"""The watcher: notices new files in the DFS tree, keeps the ledger and enqueues one job per set version."""
